"""`counts`: the plain counts profile, our quality bar.

log1p buy and cart counts over the most bought categories, the most bought SKUs and the 100
price buckets (what drives the propensity tasks), plus recency and frequency per event type;
standardized with statistics learned in `fit`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import ClassVar

import numpy as np
import polars as pl

from ubp.data.window import InputWindow
from ubp.encoders.base import Run
from ubp.encoders.tabular import (
    RawCache,
    age_days,
    cached_raw,
    fit_raw,
    index_of,
    load_state,
    long_to_wide,
    save_state,
    standardize,
    top_values,
)
from ubp.layout import EVENT_TYPES, EventType

N_PRICES = 100
PROFILE_TYPES: tuple[str, ...] = ("product_buy", "add_to_cart")
SHORT = {"product_buy": "buy", "add_to_cart": "cart", "remove_from_cart": "remove", "page_visit": "visit", "search_query": "search"}


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
        names += [f"{SHORT[t]}_cat_{c}" for c in categories]
        names += [f"{SHORT[t]}_sku_{s}" for s in skus]
        names += [f"{SHORT[t]}_price_{p}" for p in range(N_PRICES)]
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


def column_names(categories: np.ndarray, skus: np.ndarray, windows: tuple[int, ...]) -> tuple[list[str], list[str], list[str]]:
    """(profile columns, frequency columns, recency columns) of the counts table."""
    freq = [f"n_{SHORT[t]}_{w}d" for t in EVENT_TYPES for w in windows] + [f"n_{SHORT[t]}_all" for t in EVENT_TYPES]
    rec = [f"days_since_{SHORT[t]}" for t in EVENT_TYPES]
    return profile_names(categories, skus), freq, rec


@dataclass(frozen=True)
class CountsTable:
    """One shard's raw table: the query and the fitted top lists it needs (what a worker receives)."""

    cutoff: datetime
    windows: tuple[int, ...]
    categories: np.ndarray
    skus: np.ndarray

    def __call__(self, lf: pl.LazyFrame) -> pl.DataFrame:
        """log1p counts and days since the last event of each type."""
        lf = lf.with_columns(age_days(self.cutoff).alias("age"))
        aggs = []
        for t in EVENT_TYPES:
            is_t = pl.col("event_type") == EventType[t.upper()].value
            aggs += [(is_t & (pl.col("age") <= w)).sum().alias(f"n_{SHORT[t]}_{w}d") for w in self.windows]
            aggs.append(is_t.sum().alias(f"n_{SHORT[t]}_all"))
            aggs.append(pl.col("age").filter(is_t).min().alias(f"days_since_{SHORT[t]}"))
        long_q = profile_long(lf, self.categories, self.skus)
        long, per_type = pl.collect_all([long_q, lf.group_by("client_id").agg(aggs)])
        prof, freq, _ = column_names(self.categories, self.skus, self.windows)
        wide = long_to_wide(long, prof)
        table = per_type.join(wide, on="client_id", how="left")
        return table.with_columns([pl.col(c).fill_null(0).log1p() for c in prof + freq])


class CountsEncoder:
    """Top-list buy/cart log-counts + recency/frequency per event type, standardized."""

    name: ClassVar[str] = "counts"
    preferred_normalise: ClassVar[str] = "none"  # standardized and clipped in transform

    def __init__(self, top_n: int = 100, windows: tuple[int, ...] = (7, 30, 90), clip: float = 5.0) -> None:
        self.top_n = top_n
        self.windows = tuple(windows)
        self.clip = clip
        self.cache_: RawCache | None = None  # raw rows of the fit clients, for transform of the same window

    def _names(self) -> tuple[list[str], list[str], list[str]]:
        """(profile columns, frequency columns, recency columns)."""
        return column_names(self.categories_, self.skus_, self.windows)

    def _table(self, window: InputWindow) -> "CountsTable":
        return CountsTable(window.cutoff, self.windows, self.categories_, self.skus_)

    def fit(self, window: InputWindow, run: Run | None = None) -> "CountsEncoder":
        self.categories_, self.skus_ = most_bought(window, self.top_n)
        prof, freq, rec = self._names()
        self.columns_ = prof + freq + rec
        self.mean_, self.std_, self.cache_ = fit_raw(window, self._table(window), self.columns_, frozenset(rec))
        return self

    def raw(self, window: InputWindow, client_ids: np.ndarray) -> np.ndarray:
        """Unstandardized columns (`columns_`), NaN where a client never had an event of a type."""
        rec = self._names()[2]
        return cached_raw(self.cache_, window, client_ids, self._table(window), self.columns_, frozenset(rec))

    def transform(self, window: InputWindow, client_ids: np.ndarray) -> np.ndarray:
        return standardize(self.raw(window, client_ids), self.mean_, self.std_, self.clip, inplace=True)

    def save(self, path: Path) -> None:
        save_state(
            path,
            {"top_n": self.top_n, "windows": list(self.windows), "clip": self.clip, "columns": self.columns_},
            {"categories": self.categories_, "skus": self.skus_, "mean": self.mean_, "std": self.std_},
        )

    @classmethod
    def load(cls, path: Path) -> "CountsEncoder":
        params, arrays = load_state(path)
        enc = cls(top_n=params["top_n"], windows=tuple(params["windows"]), clip=params["clip"])
        enc.columns_ = params["columns"]
        enc.categories_, enc.skus_ = arrays["categories"], arrays["skus"]
        enc.mean_, enc.std_ = arrays["mean"], arrays["std"]
        return enc
