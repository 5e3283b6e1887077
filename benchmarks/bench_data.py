"""Wall time and peak memory of synth → prepare → split, against a plain pyarrow read of the raw files.

Each stage runs in its own child process (this script again, with --stage), so every peak RSS
is that stage's own. The reference reads every raw table fully into memory with pyarrow: a
floor for any stage that must look at every byte once.

    python benchmarks/bench_data.py --scale small
    nice -n 10 python benchmarks/bench_data.py            # medium
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

STAGES = ("synth", "reference", "prepare", "split")


def run_stage(stage: str, data_dir: Path, scale: str, seed: int) -> dict[str, float]:
    """Run one stage in this process; returns its wall time and this process's peak RSS."""
    start = time.perf_counter()
    if stage == "synth":
        from ubp.synth.world import generate

        generate(data_dir, n_users=None, scale=scale, seed=seed, show_progress=False)
    elif stage == "reference":
        import pyarrow.parquet as pq

        tables = [pq.read_table(p) for p in sorted(data_dir.glob("*.parquet"))]
        assert sum(t.num_rows for t in tables) > 0
    elif stage == "prepare":
        from ubp.data.prepare import prepare

        prepare(data_dir)
    else:
        from ubp.data.split import split

        split(data_dir)
    wall = time.perf_counter() - start
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    return {"wall_s": wall, "peak_rss_mib": peak_mib}


def measure(stage: str, data_dir: Path, scale: str, seed: int) -> dict[str, float]:
    cmd = [sys.executable, __file__, "--stage", stage, "--out", str(data_dir), "--scale", scale, "--seed", str(seed)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="medium", choices=["tiny", "small", "medium", "full"])
    parser.add_argument("--out", type=Path, default=None, help="World directory (default /tmp/ubp-bench-<scale>).")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--stage", choices=STAGES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    data_dir = args.out or Path(f"/tmp/ubp-bench-{args.scale}")
    if args.stage:
        print(json.dumps(run_stage(args.stage, data_dir, args.scale, args.seed)))
        return

    shutil.rmtree(data_dir, ignore_errors=True)
    results = {stage: measure(stage, data_dir, args.scale, args.seed) for stage in STAGES}
    raw_mib = sum(p.stat().st_size for p in data_dir.glob("*.parquet")) / 2**20
    events = sum(json.loads((data_dir / "input" / "window" / "window.json").read_text())["event_counts"].values())
    ref = results["reference"]
    print(f"scale {args.scale}: raw parquet {raw_mib:,.1f} MiB, {events:,} input-window events, dir {data_dir}")
    print(f"{'stage':<10} {'wall s':>9} {'peak RSS MiB':>13} {'time / ref':>11} {'RSS / ref':>10}")
    for stage, r in results.items():
        print(
            f"{stage:<10} {r['wall_s']:>9.2f} {r['peak_rss_mib']:>13,.0f} "
            f"{r['wall_s'] / ref['wall_s']:>11.2f} {r['peak_rss_mib'] / ref['peak_rss_mib']:>10.2f}"
        )


if __name__ == "__main__":
    main()
