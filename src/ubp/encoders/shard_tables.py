"""Per-user tables computed shard by shard, placed in the caller's order of clients.

A shard holds every event of its users, so a per-user table computed shard by shard is complete
while a block never holds more than one shard's events. Each shard's table is computed on the
current engine (`ubp.engines`); its rows are then copied to the caller's rows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial
from typing import NamedTuple

import numpy as np
import polars as pl

from ubp.data.window import InputWindow, Shard, shard_of
from ubp.engines import map_shards
from ubp.layout import STREAM_SCHEMA

ShardTable = Callable[[pl.LazyFrame], pl.DataFrame]  # one shard's events → its per-user table (client_id + columns)


def fit_clients(window: InputWindow) -> np.ndarray:
    """Clients a block learns its statistics on: the relevant ones, or everyone with an event."""
    if len(window.relevant_clients):
        return np.unique(window.relevant_clients)
    ids = window.stream().select(pl.col("client_id").unique()).collect()["client_id"]
    return np.sort(ids.to_numpy()).astype(np.int64)


def sample_fit_clients(window: InputWindow, max_users: int | None, seed: int) -> np.ndarray:
    """The fit clients, or a seeded sample of `max_users` of them (sorted): what a neural block trains on."""
    clients = fit_clients(window)
    if max_users is not None and len(clients) > max_users:
        pick = np.random.default_rng(seed).choice(len(clients), size=max_users, replace=False)
        clients = clients[np.sort(pick)]
    return clients


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
    """The lazy events of one job's clients in its shard."""
    events = job.shard.scan() if job.shard is not None else pl.LazyFrame(schema=STREAM_SCHEMA)
    return events if job.ids is None else events.filter(pl.col("client_id").is_in(job.ids.implode()))


def table_of(shard_table: ShardTable, job: TableJob) -> pl.DataFrame:
    """One shard's per-user table (runs on the engine's worker)."""
    return shard_table(shard_events(job))


def iter_raw(
    window: InputWindow,
    client_ids: np.ndarray,
    shard_table: ShardTable,
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


def raw_matrix(window: InputWindow, client_ids: np.ndarray, shard_table: ShardTable, columns, nullable=frozenset()) -> np.ndarray:
    """The whole raw (len(client_ids), len(columns)) float32 matrix; NaN marks missing values."""
    out = np.zeros((len(client_ids), len(columns)), dtype=np.float32)
    for rows, block in iter_raw(window, client_ids, shard_table, columns, nullable):
        out[rows] = block
    return out


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


def place_rows(table: pl.DataFrame, columns: list[str], client_ids: np.ndarray, out: np.ndarray) -> None:
    """Copy `table`'s rows (keyed by client_id) into `out` at the rows of `client_ids`."""
    if table.is_empty():
        return
    src, dst = rows_of(client_ids, table["client_id"].to_numpy())
    values = table.select(pl.col(columns).cast(pl.Float32)).to_numpy()
    out[src] = values[dst]
