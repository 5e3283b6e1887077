"""The top lists of a window (most bought categories and SKUs) and the per-user counts against them.

`counts` and `features` both count each user's buys and carts over the top categories, the top SKUs
and the price buckets (what drives the propensity tasks); `dcn` takes its inner-split targets from
the same top lists.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from ubp.data.window import InputWindow
from ubp.encoders.frames import index_of
from ubp.layout import SHORT_NAMES, EventType

N_PRICES = 100
PROFILE_TYPES: tuple[str, ...] = ("product_buy", "add_to_cart")


def top_values(counts: pl.DataFrame, column: str, n: int) -> np.ndarray:
    """The `n` most frequent values of `column` in a (value, len) table; ties go to the smaller value."""
    if counts.is_empty():
        return np.empty(0, dtype=np.int64)
    top = counts.drop_nulls(column).sort(["len", column], descending=[True, False]).head(n)
    return top[column].to_numpy().astype(np.int64)


def most_bought(window: InputWindow, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The `n` most bought categories and SKUs of the window (ties to the smaller id)."""
    buys = window.events("product_buy").select("category", "sku")
    cats = buys.group_by("category").agg(pl.len()).collect()
    skus = buys.group_by("sku").agg(pl.len()).collect()
    return top_values(cats, "category", n), top_values(skus, "sku", n)


def profile_names(categories: np.ndarray, skus: np.ndarray) -> list[str]:
    """Column names of `profile_long`'s columns, in its column order."""
    names = []
    for t in PROFILE_TYPES:
        names += [f"{SHORT_NAMES[t]}_cat_{c}" for c in categories]
        names += [f"{SHORT_NAMES[t]}_sku_{s}" for s in skus]
        names += [f"{SHORT_NAMES[t]}_price_{p}" for p in range(N_PRICES)]
    return names


def profile_long(lf: pl.LazyFrame, categories: np.ndarray, skus: np.ndarray) -> pl.LazyFrame:
    """Long (client_id, col, value) counts of buys and carts per top category / top SKU / price bucket."""
    parts = []
    offset = 0
    for t in PROFILE_TYPES:
        events = lf.filter(pl.col("event_type") == EventType[t.upper()].value)
        for col in (
            index_of("category", categories),
            index_of("sku", skus) + len(categories),
            pl.col("price").cast(pl.Int64).clip(0, N_PRICES - 1) + len(categories) + len(skus),
        ):
            parts.append(
                events.select("client_id", (col + offset).alias("col"))
                .drop_nulls("col")
                .group_by("client_id", "col")
                .agg(pl.len().cast(pl.Float32).alias("value"))
            )
        offset += len(categories) + len(skus) + N_PRICES
    return pl.concat(parts)
