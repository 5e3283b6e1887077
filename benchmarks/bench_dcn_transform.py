"""Peak memory and time of a fitted `dcn` block's `transform` per batch width, against the widest.

Each width runs in a fresh process (peak RSS is per process), on a cached fit (a folder of a
profile cache's `blocks/`, as `ubp run` leaves it) and its window; every width must give the cached
matrix bit for bit, as a row never depends on its batch.

    python benchmarks/bench_dcn_transform.py --data-dir W --block CACHE/blocks/dcn-… --batches 8192 1024
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def measure(data_dir: Path, block: Path, batch: int) -> dict:
    """Transform the cached fit's clients at `batch` rows per step, in this process."""
    import ubp.encoders.dcn.encoder as dcn
    from ubp.data.window import InputWindow

    dcn.TRANSFORM_BATCH = batch
    encoder = dcn.DcnEncoder.load(block / "model")
    window = InputWindow.open(data_dir)
    ids = np.load(block / "client_ids.npy")
    start = time.perf_counter()
    out = encoder.transform(window, ids)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    return {"batch": batch, "seconds": seconds, "peak_gib": peak, "same": bool(np.array_equal(out, np.load(block / "matrix.npy")))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", type=Path, required=True)
    ap.add_argument("--block", type=Path, required=True, help="a cached dcn fit (holds model/, client_ids.npy, matrix.npy)")
    ap.add_argument("--batches", type=int, nargs="+", default=[8192, 1024], help="the first is the reference")
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one is not None:
        print(json.dumps(measure(args.data_dir, args.block, args.one)))
        return
    rows = []
    for batch in args.batches:
        cmd = [sys.executable, __file__, "--data-dir", str(args.data_dir), "--block", str(args.block), "--one", str(batch)]
        rows.append(json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.splitlines()[-1]))
    ref = rows[0]
    for r in rows:
        print(f"batch {r['batch']:6d}: {r['seconds']:6.1f} s ({r['seconds'] / ref['seconds']:.2f}× the first), "
              f"peak {r['peak_gib']:.2f} GiB ({r['peak_gib'] / ref['peak_gib']:.2f}×), same matrix: {r['same']}")


if __name__ == "__main__":
    main()
