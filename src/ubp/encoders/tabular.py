"""Shared plumbing of the table-like blocks (baseline, counts, features).

Per-user tables are computed shard by shard (a shard holds every event of its users), so a
block never holds more than one shard's events; rows are then placed in the caller's order.
State is saved as `params.json` + `state.npz` (no pickle), written to a temporary folder
and renamed so a killed save never leaves half a model.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from functools import partial
from typing import NamedTuple

import numpy as np
import polars as pl

from ubp.chunks import spans
from ubp.data.window import InputWindow, Shard, shard_of
from ubp.engines import map_shards
from ubp.layout import STREAM_SCHEMA

SECONDS_PER_DAY = 86_400.0
# Largest fit-client raw matrix kept for transform: with the output matrix beside it, a full-scale
# run (1M+ clients x ~1,100 columns) would pass the 16 GiB budget, so it recomputes instead.
RAW_CACHE_BYTES = 4 * 2**30
PERMUTE_BYTES = 64 * 2**20  # the band of columns `RawCache.release` permutes at a time


def fit_clients(window: InputWindow) -> np.ndarray:
    """Clients a block learns its statistics on: the relevant ones, or everyone with an event."""
    if len(window.relevant_clients):
        return np.unique(window.relevant_clients)
    ids = window.stream().select(pl.col("client_id").unique()).collect()["client_id"]
    return np.sort(ids.to_numpy()).astype(np.int64)


class ShardTask(NamedTuple):
    """One shard's share of a per-user table: which rows of the caller's clients it fills."""

    rows: np.ndarray  # positions in the caller's `client_ids`
    shard: Shard | None  # None = no shard (an empty window)
    ids: pl.Series  # the distinct client ids of those rows


def shard_tasks(window: InputWindow, client_ids: np.ndarray) -> list[ShardTask]:
    """One task per shard holding any of `client_ids`.

    Each shard holds every event of its users, so per-user tables computed shard by shard are
    complete and memory stays bounded by one shard."""
    client_ids = np.asarray(client_ids, dtype=np.int64)
    n = len(window.shards)
    if n == 0:
        return [ShardTask(np.arange(len(client_ids)), None, pl.Series(np.unique(client_ids), dtype=pl.Int64))]
    shard = pl.DataFrame({"client_id": client_ids}).select(shard_of(pl.col("client_id"), n))[:, 0].to_numpy()
    tasks = []
    for k in range(n):
        rows = np.flatnonzero(shard == k)
        if len(rows):
            tasks.append(ShardTask(rows, window.shard(k), pl.Series(np.unique(client_ids[rows]), dtype=pl.Int64)))
    return tasks


class TableJob(NamedTuple):
    """What a worker gets for one shard: its location and the clients wanted, nothing else."""

    shard: Shard | None
    ids: pl.Series | None  # None: every client of the shard


def shard_jobs(window: InputWindow, client_ids: np.ndarray | None = None) -> list[TableJob]:
    """One job per shard: every client of each shard, or the shards' shares of `client_ids`."""
    if client_ids is not None:
        return [TableJob(t.shard, t.ids) for t in shard_tasks(window, client_ids)]
    return [TableJob(window.shard(k), None) for k in range(len(window.shards))]


def shard_events(job: TableJob | ShardTask) -> pl.LazyFrame:
    """The lazy events of one task's clients in its shard."""
    events = job.shard.scan() if job.shard is not None else pl.LazyFrame(schema=STREAM_SCHEMA)
    return events if job.ids is None else events.filter(pl.col("client_id").is_in(job.ids.implode()))


def table_of(shard_table: Callable[[pl.LazyFrame], pl.DataFrame], job: TableJob) -> pl.DataFrame:
    """One shard's per-user table (runs on the engine's worker)."""
    return shard_table(shard_events(job))


def iter_raw(
    window: InputWindow,
    client_ids: np.ndarray,
    shard_table: Callable[[pl.LazyFrame], pl.DataFrame],
    columns: list[str],
    nullable: frozenset[str] = frozenset(),
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(rows, raw matrix) per shard: `shard_table`'s columns for those clients, in their order.

    A client without events gets 0 in every column and NaN (missing) in the `nullable` ones.
    The per-shard tables are computed on the current engine (`ubp.engines`); `shard_table` is
    what travels to its workers, so it holds the block's query options, never its caches."""
    client_ids = np.asarray(client_ids, dtype=np.int64)
    fill = np.array([np.nan if c in nullable else 0.0 for c in columns], dtype=np.float32)
    tasks = shard_tasks(window, client_ids)
    jobs = [TableJob(t.shard, t.ids) for t in tasks]
    tables = map_shards(partial(table_of, shard_table), jobs, near=window.root)
    for task, table in zip(tasks, tables):
        block = np.broadcast_to(fill, (len(task.rows), len(columns))).copy()
        place_rows(table, columns, client_ids[task.rows], block)
        yield task.rows, block


def raw_matrix(window: InputWindow, client_ids: np.ndarray, shard_table, columns, nullable=frozenset()) -> np.ndarray:
    """The whole raw (len(client_ids), len(columns)) float32 matrix; NaN marks missing values."""
    out = np.zeros((len(client_ids), len(columns)), dtype=np.float32)
    for rows, block in iter_raw(window, client_ids, shard_table, columns, nullable):
        out[rows] = block
    return out


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
    cache: RawCache | None, window: InputWindow, client_ids: np.ndarray, shard_table, columns, nullable=frozenset(),
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
    window: InputWindow, shard_table, columns, nullable=frozenset(), squash: Callable[[np.ndarray], np.ndarray] | None = None
) -> tuple[np.ndarray, np.ndarray, RawCache | None]:
    """Mean/std of each column over the fit clients, and the cache of their raw matrix (None when
    it would exceed `RAW_CACHE_BYTES`: then `transform` computes its rows again, shard by shard).

    `squash` (a column-wise transform of a copy, e.g. log of heavy tails) is applied before the
    moments, so they describe what `transform` standardizes; the cache keeps raw values."""
    ids = fit_clients(window)
    moments = RunningMoments(len(columns))
    if len(ids) * len(columns) * 4 > RAW_CACHE_BYTES:
        for _, block in iter_raw(window, ids, shard_table, columns, nullable):
            moments.update(squash(block) if squash else block)
        return *moments.result(), None
    matrix = raw_matrix(window, ids, shard_table, columns, nullable)
    for rows in spans(len(ids)):
        chunk = matrix[rows]
        moments.update(squash(chunk.copy()) if squash else chunk)
    return *moments.result(), RawCache(window, ids, matrix)


def age_days(cutoff: datetime) -> pl.Expr:
    """Days from each event to the cutoff (float): 0 = just before the cutoff."""
    return (pl.lit(cutoff) - pl.col("timestamp")).dt.total_microseconds() / (SECONDS_PER_DAY * 1e6)


def top_values(counts: pl.DataFrame, column: str, n: int) -> np.ndarray:
    """The `n` most frequent values of `column` in a (value, len) table; ties go to the smaller value."""
    if counts.is_empty():
        return np.empty(0, dtype=np.int64)
    top = counts.drop_nulls(column).sort(["len", column], descending=[True, False]).head(n)
    return top[column].to_numpy().astype(np.int64)


def index_of(column: str, values: np.ndarray) -> pl.Expr:
    """Position of each row's `column` value in `values` (null when absent)."""
    return pl.col(column).replace_strict(
        pl.Series(values, dtype=pl.Int64), pl.Series(np.arange(len(values)), dtype=pl.Int64), default=None
    )


def rows_of(ids: np.ndarray, client_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each of `ids`, its rows in `client_ids` (an id asked for twice gets both rows).

    Returns (positions into `ids`, positions into `client_ids`)."""
    order = np.argsort(client_ids, kind="stable")
    sorted_ids = client_ids[order]
    lo = np.searchsorted(sorted_ids, ids, side="left")
    hi = np.searchsorted(sorted_ids, ids, side="right")
    n = hi - lo
    src = np.repeat(np.arange(len(ids)), n)
    starts = np.repeat(lo - np.cumsum(n) + n, n)
    dst = order[np.arange(n.sum()) + starts]
    return src, dst


def long_to_wide(long: pl.DataFrame, names: list[str]) -> pl.DataFrame:
    """Wide table (client_id + `names`) from a long (client_id, col, value) one; duplicates add up.

    A numpy scatter rather than a pivot, so every named column exists even when no row hits it."""
    ids, inverse = np.unique(long["client_id"].to_numpy(), return_inverse=True)
    dense = np.zeros((len(ids), len(names)), dtype=np.float32)
    if len(long):
        np.add.at(dense, (inverse, long["col"].to_numpy().astype(np.int64)), long["value"].to_numpy().astype(np.float32))
    return pl.DataFrame({"client_id": ids.astype(np.int64)}).hstack(
        pl.DataFrame(dense, schema=names, orient="row") if len(ids) else pl.DataFrame(schema={n: pl.Float32 for n in names})
    )


def place_rows(table: pl.DataFrame, columns: list[str], client_ids: np.ndarray, out: np.ndarray) -> None:
    """Copy `table`'s rows (keyed by client_id) into `out` at the rows of `client_ids`."""
    if table.is_empty():
        return
    src, dst = rows_of(client_ids, table["client_id"].to_numpy())
    values = table.select(pl.col(columns).cast(pl.Float32)).to_numpy()
    out[src] = values[dst]


class RunningMoments:
    """Mean and std per column over non-missing (NaN-free) values, accumulated shard by shard."""

    def __init__(self, n_cols: int) -> None:
        self.n = np.zeros(n_cols)
        self.s = np.zeros(n_cols)
        self.ss = np.zeros(n_cols)

    def update(self, x: np.ndarray) -> None:
        ok = ~np.isnan(x)
        x0 = np.where(ok, x, 0.0).astype(np.float64)
        self.n += ok.sum(axis=0)
        self.s += x0.sum(axis=0)
        self.ss += np.square(x0, out=x0).sum(axis=0)

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        n = np.maximum(self.n, 1.0)
        mean = self.s / n
        var = np.maximum(self.ss / n - mean * mean, 0.0)
        std = np.sqrt(var)
        return mean.astype(np.float32), np.where(std > 1e-9, std, 1.0).astype(np.float32)


def standardize(x: np.ndarray, mean: np.ndarray, std: np.ndarray, clip: float, inplace: bool = False) -> np.ndarray:
    """z-scores with missing values (NaN) imputed by the fitted mean (z = 0) and extremes clipped.

    `inplace` overwrites a float32 `x` the caller no longer needs (saves one matrix of memory)."""
    z = np.subtract(x, mean, out=x if inplace else None, dtype=np.float32)  # at most one copy; the rest in place
    np.divide(z, std, out=z)
    np.clip(z, -clip, clip, out=z)  # also maps ±inf to ±clip
    np.copyto(z, 0.0, where=np.isnan(z))
    return z


def save_state(path: Path | str, params: dict, arrays: dict[str, np.ndarray]) -> None:
    """Write params.json + state.npz into `path` atomically (temporary folder, then rename)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    (tmp / "params.json").write_text(json.dumps(params, indent=1, default=str))
    np.savez(tmp / "state.npz", **arrays)
    if path.exists():
        shutil.rmtree(path)
    os.replace(tmp, path)


def load_state(path: Path | str) -> tuple[dict, dict[str, np.ndarray]]:
    path = Path(path)
    for name in ("params.json", "state.npz"):
        if not (path / name).is_file():
            raise FileNotFoundError(f"{path / name}: missing; a saved block holds params.json and state.npz")
    with np.load(path / "state.npz", allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    return json.loads((path / "params.json").read_text()), arrays
