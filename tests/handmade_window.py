"""A hand-written event log of a few users, written as an input window (shared by encoder tests).

Cutoff 2024-03-01 00:00. Users: 1 (a bit of everything, events exactly 7 and 28 days before the
cutoff), 2 (three events 29:59 and 30:00 apart: two sessions), 3 (a single visit),
4 (relevant, no events). No remove_from_cart at all: an absent event type.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
import polars as pl

from ubp.data.window import InputWindow, write_window
from ubp.layout import STREAM_SCHEMA, VECTOR_LEN, EventType

CUTOFF = datetime(2024, 3, 1)
PRODUCTS = pl.DataFrame(
    {
        "sku": [1, 2, 3, 4],
        "category": [10, 10, 20, 30],
        "price": [5, 15, 50, 95],
        "name": [[k] * VECTOR_LEN for k in (0, 10, 200, 250)],
    }
)
B, C, V, S = "product_buy", "add_to_cart", "page_visit", "search_query"
# (client, timestamp, type, sku | url | query token)
EVENTS = [
    (1, "2024-01-10 12:00:00", V, 900),
    (1, "2024-02-02 00:00:00", C, 3),  # exactly 28 days before the cutoff
    (1, "2024-02-02 00:10:00", B, 3),
    (1, "2024-02-23 00:00:00", C, 1),  # exactly 7 days before the cutoff
    (1, "2024-02-25 18:00:00", S, 7),
    (1, "2024-02-25 18:05:00", C, 2),
    (1, "2024-02-25 18:06:00", B, 2),
    (1, "2024-02-25 18:07:00", B, 1),
    (1, "2024-02-29 23:00:00", V, 901),
    (2, "2024-02-20 10:00:00", V, 900),
    (2, "2024-02-20 10:29:59", V, 901),
    (2, "2024-02-20 10:59:59", C, 4),  # 30:00 after the previous one: a new session
    (3, "2024-02-10 08:00:00", V, 902),
    (5, "2024-02-28 09:00:00", C, 4),  # not relevant: must not move fitted statistics' client set
    (5, "2024-03-01 00:00:00", B, 4),  # at the cutoff: never visible
]
RELEVANT = np.array([1, 2, 3, 4], dtype=np.int64)


def events_frame(rows=EVENTS) -> pl.LazyFrame:
    """The typed stream (STREAM_SCHEMA) of `rows`, item fields joined from PRODUCTS."""
    raw = pl.DataFrame(
        {
            "client_id": [r[0] for r in rows],
            "timestamp": [datetime.fromisoformat(r[1]) for r in rows],
            "event_type": [EventType[r[2].upper()].value for r in rows],
            "value": [r[3] for r in rows],
        },
        schema={"client_id": pl.Int64, "timestamp": pl.Datetime("us"), "event_type": pl.UInt8, "value": pl.Int64},
    )
    is_item = pl.col("event_type") <= EventType.REMOVE_FROM_CART.value
    out = raw.with_columns(
        sku=pl.when(is_item).then(pl.col("value")),
        url=pl.when(pl.col("event_type") == EventType.PAGE_VISIT.value).then(pl.col("value")),
        qtok=pl.when(pl.col("event_type") == EventType.SEARCH_QUERY.value).then(pl.col("value")),
    ).join(PRODUCTS, on="sku", how="left")
    tokens = pl.when(is_item).then(pl.col("name")).otherwise(pl.concat_list([pl.col("qtok")] * VECTOR_LEN))
    return out.with_columns(tokens=tokens).select(list(STREAM_SCHEMA)).cast(STREAM_SCHEMA).lazy()


def handmade_window(tmp: Path, rows=EVENTS, relevant=RELEVANT, events_per_shard: int = 4) -> InputWindow:
    """Write the log under tmp/world/input (several shards) and open it."""
    return write_window(
        events_frame(rows), PRODUCTS, CUTOFF, Path(tmp) / "world" / "input", relevant, events_per_shard=events_per_shard
    )
