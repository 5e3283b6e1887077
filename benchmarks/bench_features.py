"""Throughput of the `features` block against the organisers' `baseline` block, in one run.

Usage: python benchmarks/bench_features.py [--data-dir DIR]   (default: /tmp/worlds/medium if it
exists, else /tmp/worlds/small; the world must be split). Prints fit and transform seconds,
events per second of each block, the features/baseline ratio and the peak RSS.
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path


from ubp.data.window import InputWindow
from ubp.encoders.base import Run
from ubp.encoders.registry import create


def default_world() -> Path:
    medium = Path("/tmp/worlds/medium")
    return medium if (medium / "input" / "window" / "window.json").is_file() else Path("/tmp/worlds/small")


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(name: str, window: InputWindow) -> float:
    """Fit + transform the relevant clients; returns events per second of the whole run."""
    t0 = time.perf_counter()
    enc = create(name).fit(window, Run(seed=0, show_progress=False))
    t1 = time.perf_counter()
    x = enc.transform(window, window.relevant_clients)
    t2 = time.perf_counter()
    rate = window.n_events / (t2 - t0)
    print(
        f"{name:9s} dim {x.shape[1]:5d}  fit {t1 - t0:7.1f} s  transform {t2 - t1:7.1f} s  "
        f"{rate:12,.0f} events/s  peak RSS {peak_rss_mib():8.0f} MiB",
        flush=True,
    )
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=None)
    args = parser.parse_args()
    window = InputWindow.open(args.data_dir or default_world())
    print(f"{window.data_dir}: {window.n_events:,} events, {len(window.relevant_clients):,} relevant clients, "
          f"{len(window.shards)} shard(s)")
    base = measure("baseline", window)
    feats = measure("features", window)
    print(f"features / baseline throughput: {feats / base:.3f}")


if __name__ == "__main__":
    main()
