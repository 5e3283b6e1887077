"""Does quick mode rank entries like full mode? Spearman per task over entries of known quality.

Entries, all on the same clients in the same (hash) order: a random Gaussian entry, the world's
oracle, the oracle plus Gaussian noise at three levels, the oracle cut to a quarter of its
columns, and (with --blocks) profiles of registered blocks fitted on the world. Each is scored in
both modes on the first N clients of the hash order; the script prints every score, Spearman's
rho per task (aim ≥ 0.9) and the time of each mode. --jobs runs entries in parallel processes
(one torch thread each). --orders-full / --orders-quick score each entry K times (row order k,
network seed 1278+k) and rank by the mean, so that one run's initialisation noise does not decide
the ranking; --modes full on a GPU and --modes quick on the CPU split the work between machines
(the entries are a function of the world and the seed: --scores-from merges the other half).

    nice -n 10 .venv/bin/python benchmarks/quick_vs_full.py --data-dir W --clients 2000 \\
        --blocks baseline,counts,features --jobs 2 --out /tmp/qvf
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from ubp.data.window import InputWindow
from ubp.encoders.base import Run
from ubp.entry import read_entry, write_entry
from ubp.layout import TASKS
from ubp.profile import build_profile
from ubp.recipe import recipe_for_blocks

NOISE_LEVELS = (0.5, 1.5, 4.0)  # noise std in units of each oracle column's std


def make_entries(data_dir: Path, blocks: list[str], n: int | None, out: Path, seed: int = 0) -> dict[str, Path]:
    """Entries restricted to the first n clients of the hash order (the order ubp writes)."""
    ids, emb = read_entry(data_dir / "oracle")
    ids, emb = ids[:n], emb[:n].astype(np.float32)
    rng = np.random.default_rng(seed)
    std = emb.std(axis=0, keepdims=True) + 1e-6
    variants = {"random": rng.normal(size=emb.shape), "oracle": emb}
    for level in NOISE_LEVELS:
        variants[f"oracle+noise{level}"] = emb + rng.normal(size=emb.shape) * std * level
    variants["oracle-quarter-columns"] = emb[:, : max(1, emb.shape[1] // 4)]
    window = InputWindow.open(data_dir)
    for block in blocks:
        build_profile(window, recipe_for_blocks([block], seed=seed), out / f"{block}_all", out / "blocks", Run(seed=seed))
        block_ids, block_emb = read_entry(out / f"{block}_all")
        position = {c: i for i, c in enumerate(block_ids.tolist())}
        variants[block] = block_emb[[position[c] for c in ids.tolist()]].astype(np.float32)
    paths = {}
    for name, matrix in variants.items():
        paths[name] = out / name
        write_entry(paths[name], ids, matrix)
    return paths


def score(job: tuple[Path, Path, Path, str, tuple[str, ...], int, str]) -> tuple[str, str, dict[str, float], float]:
    import torch

    from ubp.evaluation.evaluate import evaluate

    torch.set_num_threads(1)
    data_dir, entry, out, mode, tasks, orders, device = job
    t0 = time.perf_counter()
    result = evaluate(data_dir, entry, out / f"{entry.name}_{mode}", tasks=tasks, mode=mode, device=device,
                      orders=orders, workers=1)  # --jobs processes already share the cores
    return entry.name, mode, {t: r["score"] for t, r in result.scores["tasks"].items()}, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", type=Path, required=True)
    ap.add_argument("--clients", type=int, default=None, help="score the first N clients of the hash order")
    ap.add_argument("--blocks", default="", help="comma-separated blocks to add as entries")
    ap.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASKS)
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--modes", nargs="+", default=["quick", "full"], choices=["quick", "full"])
    ap.add_argument("--orders-full", type=int, default=1)
    ap.add_argument("--orders-quick", type=int, default=1)
    ap.add_argument("--device", choices=("auto", "cpu", "cuda"), default="cpu")
    ap.add_argument("--scores-from", type=Path, help="a quick_vs_full.json whose scores fill the modes not run here")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()

    blocks = [b for b in args.blocks.split(",") if b]
    entries = make_entries(args.data_dir, blocks, args.clients, args.out)
    orders = {"full": args.orders_full, "quick": args.orders_quick}
    jobs = [(args.data_dir, path, args.out, mode, tuple(args.tasks), orders[mode], args.device)
            for path in entries.values() for mode in args.modes]
    scores: dict[str, dict[str, dict[str, float]]] = {"full": {}, "quick": {}}
    seconds = {"full": 0.0, "quick": 0.0}
    if args.scores_from is not None:
        other = json.loads(args.scores_from.read_text())
        for mode in {"full", "quick"} - set(args.modes):
            scores[mode], seconds[mode] = other["scores"][mode], other["seconds"][mode]
    # spawn, not fork: polars' and torch's thread pools do not survive a fork (it deadlocks)
    with ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        for name, mode, result, wall in pool.map(score, jobs):
            scores[mode][name] = result
            seconds[mode] += wall
            print(f"{name:<24} {mode:<5} " + " ".join(f"{t} {result[t]:.4f}" for t in args.tasks), flush=True)
            (args.out / "quick_vs_full.json").write_text(json.dumps({"scores": scores, "seconds": seconds}, indent=1))
    if not (scores["full"] and scores["quick"]):
        return
    rho = {t: float(spearmanr([scores["full"][e][t] for e in entries], [scores["quick"][e][t] for e in entries]).statistic)
           for t in args.tasks}
    print(f"\nSpearman rho (quick vs full) over {len(entries)} entries:")
    for task in args.tasks:
        print(f"  {task:<20} {rho[task]:.3f}")
    print(f"time: full {seconds['full']:.0f}s ({orders['full']} runs each), quick {seconds['quick']:.0f}s "
          f"({orders['quick']} runs each), per run full/quick = "
          f"{seconds['full'] / orders['full'] / (seconds['quick'] / orders['quick']):.1f}x")
    (args.out / "quick_vs_full.json").write_text(json.dumps({"scores": scores, "spearman": rho, "seconds": seconds}, indent=1))


if __name__ == "__main__":
    main()
