"""The bipartite user–item graph of the input window: (client, sku, relation) edges and id vocabularies."""

from __future__ import annotations

import numpy as np
import polars as pl

from ubp.data.window import InputWindow
from ubp.encoders.shard_tables import TableJob, shard_events, shard_jobs
from ubp.engines import map_shards
from ubp.layout import EventType

# Relation index of each edge type: the graph's two relations (docs/methods.md §B).
RELATIONS: dict[int, int] = {EventType.ADD_TO_CART.value: 0, EventType.PRODUCT_BUY.value: 1}


def read_edges(window: InputWindow, client_ids: np.ndarray | None = None) -> pl.DataFrame:
    """Distinct (client_id, sku, relation) of the window's cart additions and purchases.

    Read shard by shard on the current engine (a shard holds all events of its clients, so
    per-shard distinct is exact); `client_ids` restricts the read to those clients.
    """
    jobs = shard_jobs(window, client_ids) or [TableJob(None, None)]
    tables = [t for t in map_shards(shard_edges, jobs, near=window.root) if t.width]
    schema = {"client_id": pl.Int64, "sku": pl.Int64, "relation": pl.Int8}
    return pl.concat(tables).sort(["client_id", "sku", "relation"]) if tables else pl.DataFrame(schema=schema)


def shard_edges(job: TableJob) -> pl.DataFrame:
    """One shard's distinct edges (what runs on the engine's workers)."""
    lf = shard_events(job).filter(pl.col("event_type").is_in(list(RELATIONS)) & pl.col("sku").is_not_null())
    relation = pl.col("event_type").replace_strict(RELATIONS, return_dtype=pl.Int8).alias("relation")
    return lf.select("client_id", "sku", relation).unique().collect()


def user_table(edges: pl.DataFrame, relevant: np.ndarray, max_users: int) -> np.ndarray:
    """Sorted ids of the users that get a learned vector: every relevant client with an edge,
    then the most active others (by edge count, ties to the smaller id) up to `max_users`."""
    counts = edges.group_by("client_id").len()
    counts = counts.with_columns(
        pl.col("client_id").is_in(pl.Series(relevant, dtype=pl.Int64).implode()).alias("relevant")
    ).sort(["relevant", "len", "client_id"], descending=[True, True, False])
    n = max(max_users, int(counts["relevant"].sum()))
    return np.sort(counts["client_id"].head(n).to_numpy().astype(np.int64))


def lookup(vocab: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Index of each id in the sorted `vocab`, −1 where absent (ids are arbitrary int64)."""
    pos = np.searchsorted(vocab, ids)
    pos = np.minimum(pos, max(len(vocab) - 1, 0))
    found = (vocab[pos] == ids) if len(vocab) else np.zeros(len(ids), dtype=bool)
    return np.where(found, pos, -1)
