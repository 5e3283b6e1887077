"""Does quick mode rank entries like full mode? Spearman per task over entries of known quality.

Entries, all on the same clients in the same (hash) order: a random Gaussian entry, the world's
oracle, the oracle plus Gaussian noise at three levels, and the oracle cut to its first quarter of
columns. Each is scored in both modes; the script prints every score, Spearman's rho per task (aim ≥ 0.9)
and the total time of each mode.

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python benchmarks/quick_vs_full.py \\
        --data-dir /tmp/worlds/tiny --clients 600 --tasks churn conversion propensity_category
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from ubp.entry import write_entry
from ubp.evaluation.evaluate import evaluate
from ubp.layout import TASKS

NOISE_LEVELS = (0.5, 1.5, 4.0)  # noise std in units of each oracle column's std


def make_entries(oracle: Path, n: int | None, out: Path, seed: int = 0) -> dict[str, Path]:
    ids = np.load(oracle / "client_ids.npy")[:n]
    emb = np.load(oracle / "embeddings.npy")[:n].astype(np.float32)
    rng = np.random.default_rng(seed)
    std = emb.std(axis=0, keepdims=True) + 1e-6
    variants = {"random": rng.normal(size=emb.shape), "oracle": emb}
    for level in NOISE_LEVELS:
        variants[f"oracle+noise{level}"] = emb + rng.normal(size=emb.shape) * std * level
    variants["oracle-quarter-columns"] = emb[:, : max(1, emb.shape[1] // 4)]
    paths = {}
    for name, matrix in variants.items():
        paths[name] = out / name
        write_entry(paths[name], ids, matrix)
    return paths


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", type=Path, required=True)
    ap.add_argument("--oracle", type=Path, default=None, help="default: DATA_DIR/oracle")
    ap.add_argument("--clients", type=int, default=None, help="use the oracle's first N clients")
    ap.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASKS)
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="quick_vs_full_"))
    entries = make_entries(args.oracle or args.data_dir / "oracle", args.clients, work)
    scores: dict[str, dict[str, dict[str, float]]] = {"full": {}, "quick": {}}
    seconds = {"full": 0.0, "quick": 0.0}
    for name, path in entries.items():
        for mode in ("quick", "full"):
            t0 = time.perf_counter()
            result = evaluate(args.data_dir, path, work / f"{path.name}_{mode}", tasks=tuple(args.tasks),
                              mode=mode, device="cpu")
            seconds[mode] += time.perf_counter() - t0
            scores[mode][name] = {t: r["score"] for t, r in result.scores["tasks"].items()}
        print(f"{name:<20} " + "  ".join(
            f"{t}: full {scores['full'][name][t]:.4f} quick {scores['quick'][name][t]:.4f}" for t in args.tasks),
            flush=True)
    print("\nSpearman rho (quick vs full) over", len(entries), "entries:")
    for task in args.tasks:
        full = [scores["full"][e][task] for e in entries]
        quick = [scores["quick"][e][task] for e in entries]
        print(f"  {task:<20} {spearmanr(full, quick).statistic:.3f}")
    print(f"time: full {seconds['full']:.0f}s, quick {seconds['quick']:.0f}s, "
          f"full/quick = {seconds['full'] / seconds['quick']:.1f}x")


if __name__ == "__main__":
    main()
