"""Applying a saved profile (`ubp embed --model`) against fitting it (`ubp fit`), in one run.

Usage: python benchmarks/bench_embed.py [--data-dir DIR] [--scale small] [--config RECIPE]
Generates the world at DIR when it is absent. Each step runs in its own process with an empty
cache, so its peak RSS is its own: the fit (split + every block + normalisation), then the embed
of the fit log's relevant clients at the fit window's end with the saved model, first with an
empty cache (the log is cut into a window first), then again (the window cached). Prints seconds,
clients per second and peak RSS of each, and the fit/embed ratio.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STEP = """
import resource, sys
from ubp.cli import main
main(sys.argv[1:], standalone_mode=False)
print("PEAK_RSS_KIB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def step(args: list[str], cache: Path) -> tuple[float, float]:
    """(seconds, peak RSS MiB) of one `ubp` command in a fresh process."""
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", STEP, *map(str, args), "--cache", str(cache)], check=True,
                         capture_output=True, text=True).stdout
    seconds = time.perf_counter() - t0
    rss = next(int(line.split()[1]) for line in out.splitlines() if line.startswith("PEAK_RSS_KIB"))
    return seconds, rss / 1024


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", type=Path, default=Path("/tmp/worlds/small"))
    ap.add_argument("--scale", default="small")
    ap.add_argument("--config", type=Path, default=None, help="Default: the shipped recipe.")
    args = ap.parse_args()
    if not (args.data_dir / "product_buy.parquet").is_file():
        subprocess.run([sys.executable, "-m", "ubp.cli", "synth", "--out", str(args.data_dir), "--scale", args.scale,
                        "--seed", "1"], check=True)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        config = ["--config", args.config] if args.config else []
        subprocess.run([sys.executable, "-m", "ubp.cli", "split", "--data-dir", str(args.data_dir)], check=True,
                       capture_output=True)
        fit_s, fit_rss = step(["fit", "--data-dir", args.data_dir, *config, "--out", tmp / "model"], tmp / "cache")
        info = json.loads((tmp / "model" / "model.json").read_text())
        n = info["fit_window"]["n_clients"]
        as_of = info["fit_window"]["cutoff"]
        embed = ["embed", "--model", tmp / "model", "--data-dir", args.data_dir, "--as-of", as_of, "--out", tmp / "e"]
        cold_s, cold_rss = step(embed, tmp / "embed_cache")
        warm_s, warm_rss = step(embed, tmp / "embed_cache")
    print(f"{args.data_dir}: {n:,} clients, {sum(info['fit_window']['event_counts'].values()):,} input-window events, "
          f"profile width {info['width']} (shared machine: compare rows, not absolute times)")
    print(f"fit (split cached)           {fit_s:8.1f} s  {n / fit_s:9,.0f} clients/s  peak RSS {fit_rss:7,.0f} MiB")
    print(f"embed, log cut at as-of      {cold_s:8.1f} s  {n / cold_s:9,.0f} clients/s  peak RSS {cold_rss:7,.0f} MiB")
    print(f"embed, window cached         {warm_s:8.1f} s  {n / warm_s:9,.0f} clients/s  peak RSS {warm_rss:7,.0f} MiB")
    print(f"fit / embed: {fit_s / cold_s:.1f}x (cold), {fit_s / warm_s:.1f}x (window cached)")


if __name__ == "__main__":
    main()
