"""Embed again with a fitted `sequence` block under other read-out options, without refitting.

The read-out options (`by_event_type`, `whole_history`, `infer_batch_size`) change only how the
trained model's states become an embedding, so a cached fit (a folder of a profile cache's
`blocks/`, as `ubp run` leaves it) read out another way is exactly what a fit with those options
would give. Writes OUT/client_ids.npy and OUT/matrix.npy for the same clients, a folder that
`blend_cached.py` takes as a part.

    python benchmarks/reembed_sequence.py --data-dir W --block CACHE/blocks/sequence-… --out /tmp/seq_by_type \\
        --set by_event_type=true
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import numpy as np
import torch

from ubp.config import parse_assignments
from ubp.data.window import InputWindow
from ubp.encoders.sequence.config import READ_OUT_OPTIONS
from ubp.encoders.sequence.encoder import SequenceEncoder
from ubp.io import save_npy


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", type=Path, required=True)
    ap.add_argument("--block", type=Path, required=True, help="a cached sequence fit (holds model/ and client_ids.npy)")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help=f"read-out options: {', '.join(READ_OUT_OPTIONS)}")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    changes = parse_assignments(args.set)
    if unknown := sorted(set(changes) - set(READ_OUT_OPTIONS)):
        raise SystemExit(f"--set {unknown}: not read-out options (those would need a refit); known: {READ_OUT_OPTIONS}")
    torch.set_num_threads(args.threads)
    encoder = SequenceEncoder.load(args.block / "model")
    encoder.config = dataclasses.replace(encoder.config, **changes)
    ids = np.load(args.block / "client_ids.npy")
    t0 = time.perf_counter()
    matrix = encoder.transform(InputWindow.open(args.data_dir), ids)
    print(f"{len(ids):,} clients x {matrix.shape[1]} columns in {time.perf_counter() - t0:.0f} s")
    save_npy(args.out / "client_ids.npy", ids)
    save_npy(args.out / "matrix.npy", matrix)


if __name__ == "__main__":
    main()
