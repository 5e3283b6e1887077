"""One training loop (`loop`) and one checkpoint format (`checkpoint`) for every neural block."""

from ubp.training.checkpoint import CheckpointMismatch, fingerprint
from ubp.training.loop import (
    LoopOptions,
    Step,
    batch_slices,
    epoch_permutation,
    fit_rows,
    seed_everything,
    train_loop,
)

__all__ = [
    "CheckpointMismatch", "LoopOptions", "Step", "batch_slices", "epoch_permutation", "fingerprint", "fit_rows",
    "seed_everything", "train_loop",
]
