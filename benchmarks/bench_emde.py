"""Time and peak memory of the `emde` block beside a reference measured in the same run.

Each block runs in its own fresh process (so peak RSS is its own): fit on the input window,
then transform the relevant clients (all window clients if the world has none listed).
The reference is the `features` block (the table block emde competes with), or `counts`, else
a plain polars group-by count of events per client and type over the same window.

    nice -n 10 .venv/bin/python benchmarks/bench_emde.py --data-dir /tmp/worlds/small [--option n_buckets=64]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import time

import numpy as np


def _clients(window) -> np.ndarray:
    if len(window.relevant_clients):
        return window.relevant_clients
    return window.stream().select("client_id").unique().collect()["client_id"].to_numpy()


def _groupby_counts(window, clients: np.ndarray) -> np.ndarray:
    """Events per client and type: the cheapest honest per-user block over the same stream."""
    import polars as pl

    counts = (
        window.stream()
        .group_by("client_id")
        .agg([(pl.col("event_type") == k).sum().alias(str(k)) for k in range(5)])
        .collect()
    )
    out = pl.DataFrame({"client_id": clients}).join(counts, on="client_id", how="left").fill_null(0)
    return out.drop("client_id").to_numpy().astype(np.float32)


def _measure(block: str, data_dir: str, options: dict, queue: mp.Queue) -> None:
    from ubp.data.window import InputWindow
    from ubp.encoders import create
    from ubp.encoders.base import Run

    rss_start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    window = InputWindow.open(data_dir)
    clients = _clients(window)
    t0 = time.perf_counter()
    if block == "groupby":
        out = _groupby_counts(window, clients)
        t1 = t0
    else:
        encoder = create(block, **options).fit(window, Run(seed=0, show_progress=False))
        t1 = time.perf_counter()
        out = encoder.transform(window, clients)
    t2 = time.perf_counter()
    queue.put(
        {
            "block": block,
            "fit_s": t1 - t0,
            "total_s": t2 - t0,
            "width": out.shape[1],
            "rows": out.shape[0],
            "rss_start_mb": rss_start,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        }
    )


def run_block(block: str, data_dir: str, options: dict) -> dict:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_measure, args=(block, data_dir, options, queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--option", action="append", default=[], help="emde option as key=json-value")
    args = parser.parse_args()
    options = {k: json.loads(v) for k, v in (o.split("=", 1) for o in args.option)}

    from ubp.data.window import InputWindow
    from ubp.encoders.registry import REGISTRY

    window = InputWindow.open(args.data_dir)
    print(f"world {args.data_dir}: {window.n_events:,} events in {len(window.shards)} shard(s), {window.event_counts}")
    reference = next((b for b in ("features", "counts") if b in REGISTRY.names()), "groupby")
    ref = run_block(reference, args.data_dir, {})
    emde = run_block("emde", args.data_dir, options)
    print(f"{'block':10} {'fit s':>8} {'total s':>8} {'rows':>9} {'width':>6} {'peak RSS MB':>12} {'above start':>12}")
    for r in (ref, emde):
        print(
            f"{r['block']:10} {r['fit_s']:8.2f} {r['total_s']:8.2f} {r['rows']:9,} {r['width']:6} "
            f"{r['peak_rss_mb']:12.0f} {r['peak_rss_mb'] - r['rss_start_mb']:12.0f}"
        )
    print(
        f"emde / {reference}: time × {emde['total_s'] / max(ref['total_s'], 1e-9):.1f}, "
        f"peak RSS × {emde['peak_rss_mb'] / ref['peak_rss_mb']:.2f}"
    )


if __name__ == "__main__":
    main()
