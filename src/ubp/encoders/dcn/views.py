"""Two masked views of each user's history for the contrastive term.

A view keeps each event with probability 1 − p, independently per event and per view; its
features are then recomputed from the masked history by the same fitted input block. The drop
decision hashes (seed, view, shard, position in the shard's sorted stream), so a view is a
function of the seed and the data, never of the engine's row order.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from ubp.data.window import InputWindow, write_window
from ubp.hashing import stable_hash

_SPAN = float(2**64)


def keep_mask(keys: np.ndarray, p: float, salt: int) -> np.ndarray:
    """True for the keys kept: a fixed hash of each key mapped to [0, 1), compared with p."""
    u = stable_hash(keys, salt).astype(np.float64) / _SPAN
    return u >= p


def masked_window(window: InputWindow, p: float, seed: int, view: int, data_dir: Path) -> InputWindow:
    """`window` with each event dropped with probability `p`, written under `data_dir/input`."""
    n = max(len(window.shards), 1)
    salt = seed * 2 + view
    parts = [
        window.stream(k if window.shards else None)
        .with_row_index("_i")
        .filter(
            (pl.col("_i").cast(pl.Int64) * n + k).map_batches(
                lambda s: pl.Series(keep_mask(s.to_numpy(), p, salt)), return_dtype=pl.Boolean, is_elementwise=True
            )
        )
        .drop("_i")
        for k in range(n)
    ]
    return write_window(pl.concat(parts), window.products(), window.cutoff, Path(data_dir) / "input", window.relevant_clients)
