"""Where an evaluation session's time goes, per mode, beside the time of the networks alone.

For one world and a set of entries (default: the world's oracle, the oracle plus noise, the oracle
cut to a quarter of its columns, and random Gaussian columns of the oracle's width) it runs one
`evaluate_many` session per mode and prints:

- labels: building the task tables from the target files (cold), and reading them back from the
  content-keyed cache (warm; what every later session pays);
- loading: reading and checking each entry once, aligning its labels;
- training: the wall time of all (entry × task × run) networks in the pool, and inside it the
  network alone (training loops, summed over jobs) and the metrics (summed over jobs);
- end to end: `ubp evaluate` as a user runs it (a fresh process: imports, labels, one task), quick
  against full, on the first --e2e-clients rows of the first entry.

The machine may be shared with other jobs: every ratio printed is between figures measured in the
same run, and wall times are only as good as the load allowed. CPU seconds are printed beside them
(this process, its workers and the `ubp evaluate` children): on a busy machine they are the better
estimate of the wall time an idle one would take (quick mode trains on one thread per network).

    nice -n 5 .venv/bin/python benchmarks/bench_evaluation_speed.py \\
        --data-dir W --orders 5 --full-tasks churn --full-clients 3000 --e2e-clients 1500
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from ubp.entry import read_entry, write_entry
from ubp.evaluation.evaluate import default_label_cache, evaluate_many
from ubp.evaluation.label_cache import cached_task_tables
from ubp.layout import TASKS


def default_entries(data_dir: Path, out: Path, n: int | None) -> dict[str, Path]:
    """Four entries of known quality on the oracle's clients (first n rows)."""
    ids, emb = read_entry(data_dir / "oracle")
    ids, emb = ids[:n], emb[:n].astype(np.float32)
    rng = np.random.default_rng(0)
    variants = {
        "oracle": emb,
        "oracle+noise": emb + rng.normal(size=emb.shape) * (emb.std(axis=0, keepdims=True) + 1e-6),
        "oracle-quarter": emb[:, : max(1, emb.shape[1] // 4)],
        "random": rng.normal(size=emb.shape),
    }
    paths = {}
    for name, matrix in variants.items():
        paths[name] = out / name
        write_entry(paths[name], ids, matrix)
    return paths


def session_parts(data_dir: Path, entries: dict[str, Path], tasks: tuple[str, ...], mode: str, orders: int,
                  cache: Path, out: Path) -> dict[str, float]:
    t0, cpu0 = time.perf_counter(), time.process_time()
    _, times = evaluate_many(data_dir, entries, {n: out / mode / n for n in entries}, tasks=tasks, mode=mode,
                             device="cpu", orders=orders, label_cache=cache)
    total = time.perf_counter() - t0
    here_cpu = time.process_time() - cpu0  # this process; the workers' training CPU is network_cpu_s
    workers_cpu = times.network_cpu_s if times.workers > 1 else 0.0
    return {"labels (warm)": times.labels_s, "loading": times.loading_s, "training (wall)": times.training_s,
            "network alone (sum)": times.network_s, "metrics (sum)": times.metrics_s,
            "network CPU (sum)": times.network_cpu_s, "CPU per network": times.network_cpu_s / max(times.jobs, 1),
            "total": total, "total CPU": here_cpu + workers_cpu,
            "workers": times.workers, "networks": times.jobs}


def end_to_end(data_dir: Path, entry: Path, task: str, mode: str, out: Path) -> tuple[float, float]:
    """(wall, CPU) seconds of `ubp evaluate` in a fresh process, as a user runs it."""
    t0, before = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([sys.executable, "-m", "ubp", "evaluate", "--data-dir", str(data_dir), "--embeddings-dir", str(entry),
                    "--out", str(out), "--tasks", task, "--mode", mode, "--device", "cpu"],
                   check=True, capture_output=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.perf_counter() - t0, (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", type=Path, required=True)
    ap.add_argument("--entry", type=Path, action="append", help="entries to score (default: four oracle variants)")
    ap.add_argument("--clients", type=int, default=None, help="quick mode: the first N rows of each entry")
    ap.add_argument("--orders", type=int, default=5)
    ap.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASKS)
    ap.add_argument("--full-tasks", nargs="+", default=["churn"], choices=TASKS,
                    help="full mode is ~50x slower: its parts are timed on these tasks, one entry, one order")
    ap.add_argument("--full-clients", type=int, default=3000)
    ap.add_argument("--e2e-task", default="conversion", choices=TASKS)
    ap.add_argument("--e2e-clients", type=int, default=1500)
    ap.add_argument("--skip-full", action="store_true")
    ap.add_argument("--skip-e2e", action="store_true", help="skip the end-to-end `ubp evaluate` pair")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench_evaluation_speed_"))
    if args.entry:
        entries = {}
        for i, path in enumerate(args.entry):
            ids, emb = read_entry(path)
            entries[f"{i}-{path.name}"] = work / "entries" / f"{i}-{path.name}"
            write_entry(entries[f"{i}-{path.name}"], ids[: args.clients], emb[: args.clients].astype(np.float32))
    else:
        entries = default_entries(args.data_dir, work / "entries", args.clients)
    n_clients = len(np.load(next(iter(entries.values())) / "client_ids.npy"))
    cache = work / "label_cache"
    print(f"world {args.data_dir}: {n_clients} clients per entry, {len(entries)} entries, "
          f"{os.cpu_count()} cores (load average {os.getloadavg()[0]:.1f} at start)")

    t0 = time.perf_counter()
    cached_task_tables(args.data_dir, tuple(TASKS), cache)
    cold = time.perf_counter() - t0
    print(f"labels, all six tasks, built from the target files (cold cache): {cold:.2f}s")

    rows = {"quick": session_parts(args.data_dir, entries, tuple(args.tasks), "quick", args.orders, cache, work)}
    labels = f"quick: {len(entries)} entries x {len(args.tasks)} tasks x {args.orders} runs"
    if not args.skip_full:
        first = next(iter(entries))
        ids, emb = read_entry(entries[first])
        small = work / "full_entry"
        write_entry(small, ids[: args.full_clients], emb[: args.full_clients].astype(np.float32))
        rows["full"] = session_parts(args.data_dir, {first: small}, tuple(args.full_tasks), "full", 1, cache, work)
        labels += f"; full: 1 entry ({min(args.full_clients, len(ids))} clients) x {args.full_tasks} x 1 run"
    print(labels)
    keys = list(rows["quick"])
    print(f"{'part (s)':<22}" + "".join(f"{m:>10}" for m in rows))
    for key in keys:
        print(f"{key:<22}" + "".join(f"{rows[m][key]:>10.2f}" if isinstance(rows[m][key], float)
                                      else f"{rows[m][key]:>10}" for m in rows))
    for mode, r in rows.items():
        overhead = r["total"] - r["network alone (sum)"] / r["workers"]
        print(f"{mode}: network alone is {r['network alone (sum)'] / r['workers'] / r['total']:.0%} of the session's "
              f"wall time per worker ({overhead:.1f}s of labels, loading, metrics, scheduling and writing)")

    if not (args.skip_full or args.skip_e2e):
        ids, emb = read_entry(next(iter(entries.values())))
        cached_task_tables(args.data_dir, tuple(TASKS), default_label_cache(args.data_dir))  # a user's 2nd command
        e2e_entry = work / "e2e_entry"
        write_entry(e2e_entry, ids[: args.e2e_clients], emb[: args.e2e_clients].astype(np.float32))
        quick_s, quick_cpu = end_to_end(args.data_dir, e2e_entry, args.e2e_task, "quick", work / "e2e_quick")
        full_s, full_cpu = end_to_end(args.data_dir, e2e_entry, args.e2e_task, "full", work / "e2e_full")
        print(f"end to end, `ubp evaluate --tasks {args.e2e_task}` on {min(args.e2e_clients, len(ids))} clients: "
              f"quick {quick_s:.1f}s ({quick_cpu:.1f} CPU s), full {full_s:.1f}s ({full_cpu:.1f} CPU s); "
              f"full/quick = {full_s / quick_s:.1f}x wall, {full_cpu / quick_cpu:.1f}x CPU")
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
