"""Full-mode agreement and speed against the organisers' pipeline, plus quick vs full and labels.

For each entry: builds all label matrices (timed), runs `ubp evaluate --mode full` and
`--mode quick` in-process, and the organisers' `training_pipeline.train` in its own venv on the
same files, then prints per task both full scores, their difference (target: ≤ 0.002) and the
time ratios. Their pipeline needs a separate environment with their pins, e.g.

    git --git-dir=/work/.mirror/Synerise+recsys2025/repo archive HEAD | tar -x -C /tmp/recsys2025
    python -m venv /tmp/orgvenv && /tmp/orgvenv/bin/pip install torch==2.13.0 \\
        pytorch-lightning==2.2.4 torchmetrics==1.3.2 pandas pyarrow numpy tqdm rich

On a GPU (`--device cuda --skip-organisers --skip-quick`) it prints full mode's time for all six
tasks and the rate it reaches: the network's matrix-product FLOPs (forward and backward of every
training batch, forward of every validation pass) over the wall time, against the card's
measured float32 matrix-product rate (the protocol turns TF32 off).

Run (2 shared cores: keep it small and niced; OMP_NUM_THREADS applies to both pipelines):

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python benchmarks/bench_evaluate.py \\
        --data-dir /tmp/worlds/tiny --entry /tmp/worlds/tiny/oracle --clients 600 --tasks churn propensity_sku
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from ubp.evaluation.evaluate import evaluate
from ubp.evaluation.labels import build_labels
from ubp.evaluation.trainer import FULL
from ubp.layout import TASKS

HIDDEN_NAMES = {"hidden1": "conversion", "hidden2": "propensity_new_sku", "hidden3": "propensity_price"}


def subset_entry(entry: Path, n: int | None, out: Path) -> Path:
    """The first n rows of an entry, in its own order (an unchanged copy when n is None)."""
    ids, emb = np.load(entry / "client_ids.npy"), np.load(entry / "embeddings.npy")
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "client_ids.npy", ids[:n])
    np.save(out / "embeddings.npy", emb[:n])
    return out


def run_organisers(org_python: str, org_repo: Path, data_dir: Path, entry: Path, tasks: list[str],
                   score_dir: Path) -> tuple[dict[str, float], float]:
    score_dir.mkdir(parents=True, exist_ok=True)
    cmd = [org_python, "-m", "training_pipeline.train", "--data-dir", str(data_dir), "--embeddings-dir",
           str(entry), "--tasks", *tasks, "--log-name", "bench", "--accelerator", "cpu", "--devices", "auto",
           "--num-workers", "2", "--score-dir", str(score_dir), "--disable-relevant-clients-check",
           "--hidden-logging-mode"]
    env = {**os.environ, "PYTHONPATH": str(org_repo)}
    start = time.perf_counter()
    proc = subprocess.run(cmd, check=False, cwd=org_repo, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"organisers' pipeline failed:\n{proc.stderr[-3000:]}")
    raw = json.loads((score_dir / "scores.json").read_text())
    return {HIDDEN_NAMES.get(k, k): v for k, v in raw.items() if k != "placeholder"}, wall


def full_mode_flops(scores: dict, width: int) -> float:
    """Matrix-product FLOPs of a full-mode evaluation: 3 passes per training row, 1 per validation row."""
    total = 0.0
    for record in scores["tasks"].values():
        forward = 2 * (width * FULL.thin + FULL.blocks * 2 * FULL.thin * FULL.wide + FULL.thin * record["n_labels"])
        total += FULL.epochs * record["n_clients"] * (3 + 1) * forward * len(record["runs"])
    return total


def float32_matmul_tflops() -> float:
    """The GPU's float32 matrix-product rate with TF32 off, on random data."""
    import torch

    torch.backends.cuda.matmul.allow_tf32 = False
    n = 8192
    a, b = torch.randn(n, n, device="cuda"), torch.randn(n, n, device="cuda")
    for _ in range(2):
        a @ b
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(5):
        a @ b
    torch.cuda.synchronize()
    return 5 * 2 * n**3 / (time.perf_counter() - t0) / 1e12


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", type=Path, required=True)
    ap.add_argument("--entry", type=Path, action="append", required=True)
    ap.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASKS)
    ap.add_argument("--clients", type=int, default=None, help="score only the entry's first N rows")
    ap.add_argument("--org-repo", type=Path, default=Path("/tmp/recsys2025"))
    ap.add_argument("--org-python", default="/tmp/orgvenv/bin/python")
    ap.add_argument("--skip-organisers", action="store_true")
    ap.add_argument("--skip-quick", action="store_true")
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    args = ap.parse_args()
    peak = float32_matmul_tflops() if args.device == "cuda" else 0.0

    work = Path(tempfile.mkdtemp(prefix="bench_evaluate_"))
    worst = 0.0
    for i, source in enumerate(args.entry):
        entry = subset_entry(source, args.clients, work / f"entry{i}")
        ids = np.load(entry / "client_ids.npy")
        t0 = time.perf_counter()
        build_labels(args.data_dir, ids, tuple(TASKS))
        label_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        full = evaluate(args.data_dir, entry, work / f"full{i}", tasks=tuple(args.tasks), mode="full",
                        device=args.device)
        full_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        quick = full if args.skip_quick else evaluate(args.data_dir, entry, work / f"quick{i}", tasks=tuple(args.tasks),
                                                      mode="quick", device=args.device)
        quick_s = time.perf_counter() - t0
        theirs, their_s = ({}, float("nan")) if args.skip_organisers else run_organisers(
            args.org_python, args.org_repo, args.data_dir.resolve(), entry.resolve(), args.tasks, work / f"org{i}")
        print(f"\n== {source} ({len(ids)} clients, width {np.load(entry / 'embeddings.npy').shape[1]})")
        print(f"{'task':<20} {'ubp full':>9} {'organisers':>10} {'|diff|':>7} {'ubp quick':>9}")
        for task in args.tasks:
            ours = full.scores["tasks"][task]["score"]
            ref = theirs.get(task, float("nan"))
            diff = abs(ours - ref)
            worst = max(worst, diff) if not np.isnan(diff) else worst
            print(f"{task:<20} {ours:>9.4f} {ref:>10.4f} {diff:>7.4f} {quick.scores['tasks'][task]['score']:>9.4f}")
        print(f"labels, all six tasks: {label_s:.2f}s")
        print(f"ubp full {full_s:.1f}s | organisers {their_s:.1f}s | organisers/ubp = {their_s / full_s:.2f}x")
        if not args.skip_quick:
            print(f"ubp quick {quick_s:.1f}s | full/quick = {full_s / quick_s:.1f}x")
        width = int(np.load(entry / "embeddings.npy", mmap_mode="r").shape[1])
        rate = full_mode_flops(full.scores, width) / full_s / 1e12
        print(f"full mode on {args.device}: {full_s:.1f}s for {len(args.tasks)} task(s), {rate:.2f} TFLOP/s"
              + (f" = {rate / peak:.0%} of the card's float32 matrix-product rate ({peak:.1f} TFLOP/s)" if peak else ""))
    if not args.skip_organisers:
        print(f"\nlargest |ubp full − organisers| over entries and tasks: {worst:.4f} (target ≤ 0.002)")


if __name__ == "__main__":
    main()
