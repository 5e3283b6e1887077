"""The item vocabulary of a fit: SKUs and URLs seen in the input window, as one index space.

SKU and URL ids may overlap (both are arbitrary int64), so an item is keyed by (is_visit, id);
SKUs take indices 0..n_sku-1 and URLs n_sku..n_items-1. Items outside the vocabulary (first
seen after fit) have no vector and no bucket, so joins drop them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from ubp.data.window import InputWindow
from ubp.layout import EventType

VISIT = EventType.PAGE_VISIT.value


@dataclass(frozen=True)
class ItemVocab:
    sku_ids: np.ndarray  # sorted unique int64
    url_ids: np.ndarray  # sorted unique int64

    @classmethod
    def from_window(cls, window: InputWindow) -> "ItemVocab":
        """SKUs of buys, cart additions and removals; URLs of page visits."""
        items = item_events(window.stream()).select("is_visit", "item_id").unique().collect()
        sku = items.filter(~pl.col("is_visit"))["item_id"].to_numpy()
        url = items.filter(pl.col("is_visit"))["item_id"].to_numpy()
        return cls(np.sort(sku).astype(np.int64), np.sort(url).astype(np.int64))

    @property
    def n_items(self) -> int:
        return len(self.sku_ids) + len(self.url_ids)

    def frame(self) -> pl.DataFrame:
        """(is_visit, item_id) → item index, for joins."""
        n_sku = len(self.sku_ids)
        return pl.DataFrame(
            {
                "is_visit": np.r_[np.zeros(n_sku, bool), np.ones(len(self.url_ids), bool)],
                "item_id": np.r_[self.sku_ids, self.url_ids].astype(np.int64),
                "item": np.arange(self.n_items, dtype=np.int64),
            }
        )

    def attach(self, events: pl.LazyFrame) -> pl.LazyFrame:
        """Item events with their `item` index; searches, nulls and unseen items are dropped."""
        return self.index(item_events(events))

    def index(self, keyed: pl.LazyFrame) -> pl.LazyFrame:
        """Rows keyed by (is_visit, item_id) with their `item` index; unseen items are dropped.

        Per-shard work aggregates by the raw key and the driver indexes the result, so a worker
        never needs the vocabulary."""
        return keyed.join(self.frame().lazy(), on=["is_visit", "item_id"], how="inner")


def item_events(events: pl.LazyFrame) -> pl.LazyFrame:
    """Buys, cart additions, removals (keyed by SKU) and visits (keyed by URL), nulls dropped."""
    is_visit = pl.col("event_type") == VISIT
    return (
        events.filter(pl.col("event_type") <= VISIT)
        .with_columns(
            is_visit.alias("is_visit"),
            pl.when(is_visit).then(pl.col("url")).otherwise(pl.col("sku")).alias("item_id"),
        )
        .drop_nulls("item_id")
    )
