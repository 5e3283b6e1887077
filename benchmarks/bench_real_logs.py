"""Wall time of `prepare` on a log in a shop's own types, against the same log in the challenge's types.

The shop log (`ubp.synth.shop_log`) holds the same events with ISO-8601 offsets, string ids,
float prices and free-text names and queries, so the ratio is the price of the conversions.
Each `prepare` runs in its own child process, alternating, `--repeats` times; the best of each
is reported.

    python benchmarks/bench_real_logs.py --scale tiny
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def prepare_seconds(data_dir: Path) -> float:
    code = ("import sys, time; from ubp.data.prepare import prepare; t = time.perf_counter(); "
            "prepare(sys.argv[1]); print(time.perf_counter() - t)")
    done = subprocess.run([sys.executable, "-c", code, str(data_dir)], capture_output=True, text=True, check=True)
    return float(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", default="tiny")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    from ubp.synth.shop_log import raw_copy, write_shop_log
    from ubp.synth.world import generate

    with tempfile.TemporaryDirectory() as tmp:
        world = Path(tmp) / "world"
        generate(world, n_users=None, scale=args.scale, seed=1, show_progress=False)
        start = time.perf_counter()
        shop = write_shop_log(world, Path(tmp) / "shop")
        rewrite = time.perf_counter() - start
        plain = raw_copy(world, Path(tmp) / "plain")
        times: dict[str, list[float]] = {"challenge types": [], "shop types": []}
        for _ in range(args.repeats):
            times["challenge types"].append(prepare_seconds(plain))
            times["shop types"].append(prepare_seconds(shop))
    best = {k: min(v) for k, v in times.items()}
    print(f"scale {args.scale}; shop log written in {rewrite:.1f} s; prepare, best of {args.repeats}:")
    for name, seconds in best.items():
        print(f"  {name:<16} {seconds:6.2f} s  ({seconds / best['challenge types']:.2f}x)")


if __name__ == "__main__":
    main()
