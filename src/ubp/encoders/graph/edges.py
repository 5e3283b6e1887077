"""The bipartite user–item graph of the input window: (client, sku, relation) edges and id vocabularies."""

from __future__ import annotations

import numpy as np
import polars as pl

from ubp.data.window import InputWindow
from ubp.layout import EventType

# Relation index of each edge type: the graph's two relations (docs/methods.md §B).
RELATIONS: dict[int, int] = {EventType.ADD_TO_CART.value: 0, EventType.PRODUCT_BUY.value: 1}


def read_edges(window: InputWindow, client_ids: np.ndarray | None = None) -> pl.DataFrame:
    """Distinct (client_id, sku, relation) of the window's cart additions and purchases.

    Read shard by shard (a shard holds all events of its clients, so per-shard distinct is exact);
    `client_ids` restricts the read to those clients.
    """
    shards = range(len(window.shards)) if window.shards else [None]
    parts = []
    for k in shards:
        lf = window.stream(k).filter(pl.col("event_type").is_in(list(RELATIONS)) & pl.col("sku").is_not_null())
        if client_ids is not None:
            lf = lf.filter(pl.col("client_id").is_in(pl.Series(client_ids, dtype=pl.Int64).implode()))
        parts.append(
            lf.select(
                "client_id",
                "sku",
                pl.col("event_type").replace_strict(RELATIONS, return_dtype=pl.Int8).alias("relation"),
            )
            .unique()
            .collect()
        )
    return pl.concat(parts).sort(["client_id", "sku", "relation"])


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
