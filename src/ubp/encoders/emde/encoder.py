"""The `emde` block: compressed EMDE sketches of each user's items over Cleora buckets.

fit: item vocabulary → Cleora item vectors → data-adaptive hash → item codes, then a truncated
SVD of log1p sketches of a hash-chosen sample of users. Only the item codes are kept (not the
vectors): transform needs nothing else, so any user, seen in fit or not, is embedded from
their own events without retraining.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import ClassVar

import numpy as np
import polars as pl
import scipy.sparse as sp

from ubp.data.window import InputWindow
from ubp.config import from_dict
from ubp.encoders.base import Run, check_fitted
from ubp.encoders.options import EmdeOptions
from ubp.encoders.emde.cleora import item_vectors
from ubp.encoders.emde.compress import SketchCompressor
from ubp.encoders.emde.items import ItemVocab, item_events
from ubp.encoders.emde.lsh import BucketHash
from ubp.encoders.emde.sketch import DecayedWeights, sketch_rows, sketch_width
from ubp.encoders.shard_tables import shard_jobs
from ubp.engines import map_shards
from ubp.hashing import stable_hash
from ubp.errors import InputError
from ubp.io import atomic_dir, atomic_file, write_json

CONFIG_FILE = "emde.json"
ARRAYS_FILE = "emde.npz"


class EmdeEncoder:
    name: ClassVar[str] = "emde"
    preferred_normalise: ClassVar[str] = "none"  # standardized in transform

    def __init__(self, options: EmdeOptions | None = None) -> None:
        self.options = o = options or EmdeOptions()
        self.dim, self.iterations, self.n_partitions, self.n_buckets = o.dim, o.iterations, o.n_partitions, o.n_buckets
        self.half_lives_days = tuple(float(h) for h in o.half_lives_days)
        self.out_dim, self.fit_users = o.out_dim, o.fit_users

    def _options(self) -> dict:
        return asdict(self.options)

    def fit(self, window: InputWindow, run: Run) -> "EmdeEncoder":
        self.vocab_ = ItemVocab.from_window(window)
        vectors = item_vectors(window, self.vocab_, self.dim, self.iterations, run.seed)
        self.codes_ = BucketHash.fit(vectors, self.n_partitions, self.n_buckets, run.seed).codes(vectors)
        sample = fit_sample(window, self.fit_users, run.seed)
        width = sketch_width(len(self.half_lives_days), self.n_partitions, self.n_buckets)
        parts = [sk for _, sk in self._sketches(window, sample)] or [sp.csr_matrix((0, width), dtype=np.float32)]
        self.compressor_ = SketchCompressor.fit(sp.vstack(parts, format="csr"), self.out_dim, run.seed)
        return self

    def _sketches(self, window: InputWindow, clients: np.ndarray) -> Iterator[tuple[np.ndarray, sp.csr_matrix]]:
        """(client ids, sketch rows) of the given clients, one shard at a time on the current engine."""
        weights = DecayedWeights(window.cutoff, self.half_lives_days)
        for table in map_shards(weights, shard_jobs(window, clients), near=window.root):
            yield sketch_rows(table, self.vocab_, self.codes_, self.half_lives_days, self.n_buckets)

    def transform(self, window: InputWindow, client_ids: np.ndarray) -> np.ndarray:
        check_fitted(self, "compressor_")
        unique, inverse = np.unique(np.asarray(client_ids, dtype=np.int64), return_inverse=True)
        projected = np.zeros((len(unique), self.out_dim), np.float32)
        for ids, sketches in self._sketches(window, unique):
            projected[np.searchsorted(unique, ids)] = self.compressor_.project(sketches)
        return self.compressor_.standardize(projected)[inverse.ravel()]

    def save(self, path: Path) -> None:
        """`path/emde.json` (options) + `path/emde.npz` (vocabulary, codes, compressor), no pickle.

        Both files are swapped in together: options and arrays of two different fits never meet."""
        arrays = {
            "sku_ids": self.vocab_.sku_ids,
            "url_ids": self.vocab_.url_ids,
            "codes": self.codes_,
            "components": self.compressor_.components,
            "mean": self.compressor_.mean,
            "scale": self.compressor_.scale,
        }
        with atomic_dir(path) as tmp:
            with atomic_file(tmp / ARRAYS_FILE) as f:
                np.savez(f, **arrays)
            write_json(tmp / CONFIG_FILE, self._options())

    @classmethod
    def load(cls, path: Path) -> "EmdeEncoder":
        path = Path(path)
        encoder = cls(from_dict(EmdeOptions, json.loads((path / CONFIG_FILE).read_text()), str(path / CONFIG_FILE)))
        with np.load(path / ARRAYS_FILE, allow_pickle=False) as z:
            encoder.vocab_ = ItemVocab(z["sku_ids"], z["url_ids"])
            encoder.codes_ = z["codes"]
            encoder.compressor_ = SketchCompressor(z["components"], z["mean"], z["scale"])
        if encoder.codes_.shape != (encoder.vocab_.n_items, encoder.n_partitions):
            raise InputError(f"{path / ARRAYS_FILE}: codes shape {encoder.codes_.shape} does not match the vocabulary")
        return encoder


def fit_sample(window: InputWindow, n: int, seed: int) -> np.ndarray:
    """Up to `n` clients with item events, chosen by a fixed hash of their id (not by behaviour)."""
    ids = item_events(window.stream()).select("client_id").unique().collect()["client_id"].to_numpy()
    if len(ids) <= n:
        return np.sort(ids)
    return np.sort(ids[np.argsort(stable_hash(ids, salt=seed), kind="stable")[:n]])

