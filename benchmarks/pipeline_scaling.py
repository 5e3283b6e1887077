"""How each stage of `ubp run` grows with the world: tiny → small → medium → full.

Runs `ubp run --scale S --config R --orders 1 --references counts` once per scale (R: `--config`,
by default `fast`, the features alone, which the rows in benchmarks/README.md measured; a run
folder that already holds a summary is read, not rerun) and prints, per stage, wall seconds, CPU seconds, peak RSS
and CPU microseconds per input-window event (per relevant client for the evaluation). A stage
that is linear in events keeps its µs/event flat down the column; a machine shared with other
jobs stretches wall time but not CPU time, so compare the CPU columns.

    nice python benchmarks/pipeline_scaling.py --out /tmp/scaling --scales tiny,small,medium,full
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path


def run_scale(out: Path, scale: str, config: str) -> dict:
    run_dir = out / scale
    if not (run_dir / "summary.json").is_file():
        subprocess.run([sys.executable, "-m", "ubp", "run", "--scale", scale, "--config", config, "--orders", "1",
                        "--references", "counts",
                        "--out", str(run_dir), "--cache", str(out / f"cache-{scale}")], check=True)
    summary = json.loads((run_dir / "summary.json").read_text())
    window = json.loads((run_dir / "world" / "input" / "window" / "window.json").read_text())
    return {"stages": summary["stages"], "events": sum(window["event_counts"].values()),
            "clients": summary["profile"]["n_clients"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--scales", default="tiny,small,medium")
    parser.add_argument("--config", default="fast", help="the recipe (a file or a shipped name)")
    args = parser.parse_args()
    runs = {scale: run_scale(args.out, scale, args.config) for scale in args.scales.split(",")}
    print("| scale | input events | relevant clients | stage | wall s | CPU s | peak RSS GiB | CPU µs per event (per client: evaluation) |")
    print("|---|---|---|---|---|---|---|---|")
    for scale, r in runs.items():
        for s in r["stages"]:
            per = s["cpu_seconds"] * 1e6 / (r["clients"] if s["stage"].startswith("evaluate") else r["events"])
            print(f"| {scale} | {r['events']:,} | {r['clients']:,} | {s['stage']} | {s['seconds']:,.1f} | "
                  f"{s['cpu_seconds']:,.1f} | {s['peak_rss_mib'] / 1024:.2f} | {per:,.2f} |")


if __name__ == "__main__":
    main()
