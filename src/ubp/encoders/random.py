"""`random`: Gaussian noise, the floor every block must beat.

Each row depends only on (seed, client id), so a client's row does not change with which other
clients are asked for: a counter-based generator (a fixed hash of id, seed and column) feeds a
Box-Muller transform.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np

from ubp.data.window import InputWindow
from ubp.encoders.base import Run, check_fitted
from ubp.encoders.options import RandomOptions
from ubp.encoders.state import load_state, save_state
from ubp.hashing import stable_hash


def hashed_normal(client_ids: np.ndarray, seed: int, dim: int) -> np.ndarray:
    """Standard normal (len(client_ids), dim) float32, a pure function of (id, seed, column)."""
    keys = stable_hash(np.asarray(client_ids, dtype=np.int64), salt=seed)
    with np.errstate(over="ignore"):
        counters = keys[:, None] + np.arange(2 * dim, dtype=np.uint64)[None, :] * np.uint64(0xD1B54A32D192ED03)
    bits = stable_hash(counters, salt=seed)
    u = ((bits >> np.uint64(11)).astype(np.float64) + 0.5) / float(1 << 53)  # in (0, 1)
    u1, u2 = u[:, :dim], u[:, dim:]
    return (np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)).astype(np.float32)


class RandomEncoder:
    """Noise rows of width `dim`; learns nothing but the seed of the run."""

    name: ClassVar[str] = "random"
    preferred_normalise: ClassVar[str] = "none"  # already unit Gaussian

    def __init__(self, options: RandomOptions | None = None) -> None:
        self.options = options or RandomOptions()
        self.dim = self.options.dim

    def fit(self, window: InputWindow, run: Run | None = None) -> "RandomEncoder":
        self.seed_ = (run or Run()).seed
        return self

    def transform(self, window: InputWindow, client_ids: np.ndarray) -> np.ndarray:
        check_fitted(self, "seed_")
        return hashed_normal(client_ids, self.seed_, self.dim)

    def save(self, path: Path) -> None:
        save_state(path, {"dim": self.dim, "seed": self.seed_}, {})

    @classmethod
    def load(cls, path: Path) -> "RandomEncoder":
        params, _ = load_state(path)
        enc = cls(RandomOptions(dim=params["dim"]))
        enc.seed_ = params["seed"]
        return enc
