"""The raw matrix of a block's fit clients, learned once in `fit` and reused by `transform`.

`fit_raw` computes the column statistics of the fit clients' raw matrix and keeps the matrix (when
it fits in `RAW_CACHE_BYTES`), so the usual fit-then-embed flow computes every per-user table once.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ubp.chunks import spans
from ubp.data.window import InputWindow
from ubp.encoders.shard_tables import ShardTable, fit_clients, iter_raw, raw_matrix
from ubp.standardize import RunningMoments, Standardizer

# Largest fit-client raw matrix kept for transform: with the output matrix beside it, a full-scale
# run (1M+ clients x ~1,100 columns) would pass the 16 GiB budget, so it recomputes instead.
RAW_CACHE_BYTES = 4 * 2**30
PERMUTE_BYTES = 64 * 2**20  # the band of columns `RawCache.release` permutes at a time


class RawCache:
    """The raw matrix of the fit clients, kept from `fit` so that `transform` of the same window
    (the usual fit-then-embed flow) does not compute every per-user table a second time.

    Bound to the window object it was computed on: another window (a masked view, a reloaded
    block) never hits it."""

    def __init__(self, window: InputWindow, client_ids: np.ndarray, matrix: np.ndarray) -> None:
        self.window, self.ids, self.matrix = window, client_ids, matrix  # ids: unique, sorted

    def lookup(self, window: InputWindow, client_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(positions into `client_ids` found in the cache, their rows in the cached matrix)."""
        if window is not self.window or len(self.ids) == 0:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
        pos = np.minimum(np.searchsorted(self.ids, client_ids), len(self.ids) - 1)
        hit = np.flatnonzero(self.ids[pos] == client_ids)
        return hit, pos[hit]

    def release(self, rows: np.ndarray) -> np.ndarray:
        """The cached matrix itself, its rows put in the order `rows` (a permutation), and the cache
        emptied: a transform of every fit client then needs no second matrix-sized array.

        The rows are permuted in place a band of columns at a time, so the only temporary is one
        band (`PERMUTE_BYTES`)."""
        matrix = self.matrix
        band = max(PERMUTE_BYTES // max(len(rows) * matrix.itemsize, 1), 1)
        for lo in range(0, matrix.shape[1], band):
            matrix[:, lo : lo + band] = matrix[rows, lo : lo + band]
        self.ids, self.matrix = np.empty(0, dtype=np.int64), np.empty((0, matrix.shape[1]), dtype=matrix.dtype)
        return matrix


def cached_raw(
    cache: RawCache | None, window: InputWindow, client_ids: np.ndarray, shard_table: ShardTable, columns, nullable=frozenset(),
    take: bool = False,
) -> np.ndarray:
    """`raw_matrix`, taking the rows the cache holds from it and computing only the others.

    `take` (for a caller that overwrites the result, e.g. a transform) hands the cache's own matrix
    over when `client_ids` are exactly the fit clients, emptying the cache (`RawCache.release`)."""
    client_ids = np.asarray(client_ids, dtype=np.int64)
    if cache is None:
        return raw_matrix(window, client_ids, shard_table, columns, nullable)
    hit, rows = cache.lookup(window, client_ids)
    if take and len(hit) == len(client_ids) == len(cache.ids) and len(np.unique(rows)) == len(rows):
        return cache.release(rows)  # the usual embed (every fit client once): the cache becomes the output
    out = np.empty((len(client_ids), len(columns)), dtype=np.float32)
    if len(hit) == len(client_ids):  # no temporary copy of a matrix that can be GiBs
        return np.take(cache.matrix, rows, axis=0, out=out)
    out[hit] = cache.matrix[rows]
    miss = np.setdiff1d(np.arange(len(client_ids)), hit, assume_unique=True)
    if len(miss):
        out[miss] = raw_matrix(window, client_ids[miss], shard_table, columns, nullable)
    return out


def fit_raw(
    window: InputWindow, shard_table: ShardTable, columns, nullable=frozenset(), clip: float | None = None,
    squash: Callable[[np.ndarray], np.ndarray] | None = None,
) -> tuple[Standardizer, RawCache | None]:
    """The standardizer of each column over the fit clients, and the cache of their raw matrix (None
    when it would exceed `RAW_CACHE_BYTES`: then `transform` computes its rows again, shard by shard).

    `squash` (a column-wise transform of a copy, e.g. log of heavy tails) is applied before the
    moments, so they describe what `transform` standardizes; the cache keeps raw values."""
    ids = fit_clients(window)
    moments = RunningMoments(len(columns))
    if len(ids) * len(columns) * 4 > RAW_CACHE_BYTES:
        for _, block in iter_raw(window, ids, shard_table, columns, nullable):
            moments.update(squash(block) if squash else block)
        return moments.standardizer(clip), None
    matrix = raw_matrix(window, ids, shard_table, columns, nullable)
    for rows in spans(len(ids)):
        chunk = matrix[rows]
        moments.update(squash(chunk.copy()) if squash else chunk)
    return moments.standardizer(clip), RawCache(window, ids, matrix)
