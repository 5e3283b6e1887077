"""Bytes per event and peak RSS of the sequence block's tokenization, against reading the largest shard.

Each measurement runs in its own child process (this script again, with --stage), so every peak
RSS is that step's own. The reference collects the window's largest shard into polars: a floor
for any per-shard step. The tokens are written to memory-mapped files in a temporary folder; the
per-event bytes are those of the arrays kept per event, the disk bytes include the item rows.

    python benchmarks/bench_tokens.py --scale small           # generates and splits the world once
    python benchmarks/bench_tokens.py --data-dir W            # an existing split world
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

OLD_BYTES_PER_EVENT = 62  # the previous in-RAM layout (every feature stored per event), before its concat copy


def run_stage(stage: str, data_dir: Path) -> dict[str, float]:
    import polars as pl

    from ubp.data.window import InputWindow

    window = InputWindow.open(data_dir)
    start = time.perf_counter()
    out: dict[str, float] = {}
    if stage == "reference":
        sizes = [Path(s).stat().st_size for s in window.shards]
        frame = window.stream(sizes.index(max(sizes))).collect()
        out["events"] = frame.height
    else:
        from ubp.encoders.sequence.tokens import tokenize

        with tempfile.TemporaryDirectory() as folder:
            tokens = tokenize(window, 2**16, 100, folder=Path(folder))
            out["events"] = tokens.n_events
            out["per_event_bytes"] = sum(a.itemsize for a in (tokens.event_type, tokens.timestamp, tokens.row))
            out["disk_bytes"] = sum(f.stat().st_size for f in Path(folder).rglob("*") if f.is_file())
            out["shards"] = len(window.shards)
    out["seconds"] = time.perf_counter() - start
    out["peak_rss_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--scale", default="small")
    parser.add_argument("--stage", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stage:
        print(json.dumps(run_stage(args.stage, args.data_dir)))
        return
    data_dir = args.data_dir or Path(tempfile.gettempdir()) / f"ubp-bench-tokens-{args.scale}"
    if not (data_dir / "input" / "window.json").is_file():
        from ubp.data.split import split
        from ubp.synth.world import generate

        generate(data_dir, n_users=None, scale=args.scale, seed=1, show_progress=False)
        split(data_dir)
    results = {}
    for stage in ("reference", "tokenize"):
        done = subprocess.run([sys.executable, __file__, "--stage", stage, "--data-dir", str(data_dir)],
                              capture_output=True, text=True, check=True)
        results[stage] = json.loads(done.stdout.strip().splitlines()[-1])
    ref, tok = results["reference"], results["tokenize"]
    n = tok["events"]
    print(f"{data_dir}: {n:,} events in {tok['shards']:.0f} shard(s)")
    print(f"reference (collect the largest shard, {ref['events']:,} events): {ref['seconds']:.1f} s, "
          f"peak RSS {ref['peak_rss_gib']:.2f} GiB")
    print(f"tokenize: {tok['seconds']:.1f} s, peak RSS {tok['peak_rss_gib']:.2f} GiB "
          f"({tok['peak_rss_gib'] / ref['peak_rss_gib']:.2f}x the reference)")
    print(f"  {tok['per_event_bytes']:.0f} B/event in arrays kept per event, {tok['disk_bytes'] / max(n, 1):.1f} B/event "
          f"on disk with the item rows (the previous layout: {OLD_BYTES_PER_EVENT} B/event in RAM, "
          f"{OLD_BYTES_PER_EVENT * n / 2**30:.2f} GiB here, plus a concatenation copy)")


if __name__ == "__main__":
    main()
