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
from ubp.encoders.base import Run, check_fitted
from ubp.encoders.frames import age_days, long_to_wide
from ubp.encoders.options import CountsOptions
from ubp.encoders.raw_cache import cached_raw, fit_raw
from ubp.encoders.state import load_state, save_state
from ubp.encoders.top_items import most_bought, profile_long, profile_names
from ubp.layout import EVENT_TYPES, SHORT_NAMES as SHORT, EventType
from ubp.standardize import Standardizer


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

    def __init__(self, options: CountsOptions | None = None) -> None:
        self.options = options or CountsOptions()
        self.top_n, self.windows, self.clip = self.options.top_n, self.options.windows, self.options.clip

    def _names(self) -> tuple[list[str], list[str], list[str]]:
        """(profile columns, frequency columns, recency columns)."""
        return column_names(self.categories_, self.skus_, self.windows)

    def _table(self, window: InputWindow) -> "CountsTable":
        return CountsTable(window.cutoff, self.windows, self.categories_, self.skus_)

    def fit(self, window: InputWindow, run: Run | None = None) -> "CountsEncoder":
        self.categories_, self.skus_ = most_bought(window, self.top_n)
        prof, freq, rec = self._names()
        self.columns_ = prof + freq + rec
        # cache_: the fit clients' raw rows, for a transform of the same window
        self.scaler_, self.cache_ = fit_raw(window, self._table(window), self.columns_, frozenset(rec), self.clip)
        return self

    def raw(self, window: InputWindow, client_ids: np.ndarray) -> np.ndarray:
        """Unstandardized columns (`columns_`), NaN where a client never had an event of a type."""
        check_fitted(self, "scaler_")
        rec = self._names()[2]
        return cached_raw(self.cache_, window, client_ids, self._table(window), self.columns_, frozenset(rec))

    def transform(self, window: InputWindow, client_ids: np.ndarray) -> np.ndarray:
        raw = self.raw(window, client_ids)  # checks that the block is fitted
        return self.scaler_.transform(raw, inplace=True)

    def save(self, path: Path) -> None:
        save_state(
            path,
            {"top_n": self.top_n, "windows": list(self.windows), "clip": self.clip, "columns": self.columns_},
            {"categories": self.categories_, "skus": self.skus_, "mean": self.scaler_.mean, "std": self.scaler_.std},
        )

    @classmethod
    def load(cls, path: Path) -> "CountsEncoder":
        params, arrays = load_state(path)
        enc = cls(CountsOptions(top_n=params["top_n"], windows=tuple(params["windows"]), clip=params["clip"]))
        enc.columns_ = params["columns"]
        enc.categories_, enc.skus_ = arrays["categories"], arrays["skus"]
        enc.scaler_, enc.cache_ = Standardizer(arrays["mean"], arrays["std"], enc.clip), None
        return enc
