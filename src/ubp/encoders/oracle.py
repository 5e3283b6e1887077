"""`oracle`: the synthetic world's hidden user state, the ceiling no real profile can pass.

Reads DIR/oracle/{client_ids,embeddings}.npy beside the input window (DIR = window.data_dir),
written by `ubp synth`. Only meaningful on synthetic worlds; clients absent from it get zeros.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np

from ubp import store
from ubp.data.window import InputWindow
from ubp.encoders.base import Run, check_fitted
from ubp.encoders.options import OracleOptions
from ubp.encoders.shard_tables import rows_of
from ubp.encoders.state import load_state, save_state
from ubp.errors import InputError

ORACLE_DIR = "oracle"


def read_oracle(window: InputWindow) -> tuple[np.ndarray, np.ndarray]:
    """(client_ids, embeddings) of the world's oracle, with a clear error when there is none."""
    folder = store.join(window.data_dir, ORACLE_DIR)
    files = [store.join(folder, "client_ids.npy"), store.join(folder, "embeddings.npy")]
    missing = [f for f in files if not store.is_file(f)]
    if missing:
        raise InputError(
            f"{missing[0]}: no oracle here; the oracle block only works on worlds written by `ubp synth`"
        )
    ids, emb = store.load_npy(files[0]).astype(np.int64), store.load_npy(files[1])
    if emb.ndim != 2 or len(emb) != len(ids):
        raise InputError(f"{files[1]}: shape {emb.shape} does not match {len(ids)} ids in {files[0]}")
    return ids, emb.astype(np.float32)


class OracleEncoder:
    """The hidden state rows of the world, zeros for clients the world does not know."""

    name: ClassVar[str] = "oracle"
    preferred_normalise: ClassVar[str] = "none"  # the generator writes it standardized
    # read beside the window, so a fitted oracle's cache key covers them (paths under DIR)
    reads_beside_window: ClassVar[tuple[str, ...]] = (f"{ORACLE_DIR}/client_ids.npy", f"{ORACLE_DIR}/embeddings.npy")

    def __init__(self, options: OracleOptions | None = None) -> None:
        self.options = options or OracleOptions()

    def fit(self, window: InputWindow, run: Run | None = None) -> "OracleEncoder":
        self.dim_ = read_oracle(window)[1].shape[1]
        return self

    def transform(self, window: InputWindow, client_ids: np.ndarray) -> np.ndarray:
        check_fitted(self, "dim_")
        ids, emb = read_oracle(window)
        client_ids = np.asarray(client_ids, dtype=np.int64)
        out = np.zeros((len(client_ids), self.dim_), dtype=np.float32)
        src, dst = rows_of(client_ids, ids)
        out[src] = emb[dst]
        return out

    def save(self, path: Path) -> None:
        save_state(path, {"dim": self.dim_}, {})

    @classmethod
    def load(cls, path: Path) -> "OracleEncoder":
        params, _ = load_state(path)
        enc = cls()
        enc.dim_ = params["dim"]
        return enc
