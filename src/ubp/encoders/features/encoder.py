"""`features`: the handcrafted profile block (docs/methods.md §C, §D).

Assembles, per shard and in one polars query plan per shard, the windowed basics
(`windows`), time-decayed name-cluster / price-group counts (`clusters`), session and
behavioural features (`sessions`, `behaviour`) and the counts profile's top-100 buy/cart
log-counts (`ubp.encoders.counts`). Missing values stay explicit (null) in `raw_table`; the
encoder's output log-scales the heavy-tailed columns, imputes missing values with the fitted mean
and standardizes with clipped z-scores.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from pathlib import Path
from typing import ClassVar

import numpy as np
import polars as pl

from ubp.chunks import spans
from ubp.data.window import InputWindow
from ubp.config import from_dict
from ubp.encoders.base import Run, check_fitted
from ubp.encoders.options import FeaturesOptions
from ubp.encoders.features.behaviour import event_table, item_event_table, item_tables, query_table
from ubp.encoders.features.clusters import (
    assign_clusters,
    cluster_long,
    cluster_names,
    fit_name_clusters,
    share_of_interest,
)
from ubp.encoders.features.sessions import session_table, with_sessions
from ubp.encoders.features.windows import IS_ITEM, window_tables
from ubp.encoders.frames import age_days, long_to_wide
from ubp.encoders.raw_cache import cached_raw, fit_raw
from ubp.encoders.state import load_state, save_state
from ubp.encoders.top_items import most_bought, profile_long, profile_names
from ubp.io import write_with
from ubp.layout import ITEM_EVENTS, SHORT_NAMES as SHORT, STREAM_SCHEMA
from ubp.standardize import Standardizer


# Columns that are counts, durations or unbounded rates (log-scaled before standardizing); the
# counts-style profile and the decayed cluster counts are log1p already in the raw table.
HEAVY_TAILED = (
    "n_", "distinct_", "active_days", "events_per_active_day", "days_since_", "gap_hours_", "sessions",
    "session_minutes", "session_events", "session_gap", "buy_interval", "momentum_", "buys_per_search",
    "buy_per_cart", "remove_per_cart", "buy_cluster_touched", "cart_cluster_touched", "remove_cluster_touched",
)


@dataclass(frozen=True, eq=False)
class FeaturesTable:
    """One shard's raw feature table: the query and the fitted values it needs, nothing more
    (this is what a worker receives)."""

    cutoff: datetime
    windows: tuple[int, ...]
    n_clusters: int
    n_price_groups: int
    half_lives: tuple[float, ...]
    pop_skus: np.ndarray
    pop_log: np.ndarray
    categories: np.ndarray
    skus: np.ndarray
    clusters: pl.DataFrame  # sku → name cluster

    def _prepare(self, lf: pl.LazyFrame) -> tuple[pl.LazyFrame, pl.LazyFrame]:
        """(every event, the item events) of one shard, each read once and shared by every part.

        Every event gets its age in days, the gap to (and age of) the user's previous event and
        calendar fields; item events (a small share) also their SKU's name cluster and popularity."""
        same_user = pl.col("client_id") == pl.col("client_id").shift(1)  # the shard is sorted by client, time
        gap_s = pl.when(same_user).then(pl.col("timestamp").diff().dt.total_seconds())
        events = lf.with_columns(age=age_days(self.cutoff), gap_s=gap_s).with_columns(
            gap_h=pl.col("gap_s") / 3600.0,  # seconds → hours
            prev_age=pl.when(same_user).then(pl.col("age").shift(1)),
            day=pl.col("timestamp").dt.date(),
            hour=pl.col("timestamp").dt.hour(),
            wday=pl.col("timestamp").dt.weekday(),
        ).collect()
        items = events.lazy().filter(IS_ITEM).with_columns(
            cluster=pl.col("sku").replace_strict(self.clusters["sku"], self.clusters["cluster"], default=None, return_dtype=pl.Int64),
            logpop=pl.col("sku").replace_strict(
                pl.Series(self.pop_skus, dtype=pl.Int64), pl.Series(self.pop_log), default=0.0, return_dtype=pl.Float64
            ),
        )
        return events.lazy(), items.collect().lazy()

    def __call__(self, lf: pl.LazyFrame) -> pl.DataFrame:
        return self.table(lf)[0]

    def table(self, lf: pl.LazyFrame) -> tuple[pl.DataFrame, list[str]]:
        """One shard's raw table (client_id + every column) and the names of its nullable columns."""
        lf, items = self._prepare(lf)
        win_qs, _, nullable = window_tables(lf, (*self.windows, None))
        events, null_ev = event_table(lf)
        item_events, null_it = item_event_table(items)
        queries, null_q = query_table(lf)
        item_qs, null_items = item_tables(items)
        sessions, null_sess = session_table(with_sessions(lf))
        nullable = nullable + null_ev + null_it + null_q + null_items + null_sess
        n_cl = self.n_clusters
        cl_long = cluster_long(items, n_cl, self.n_price_groups, self.half_lives)
        pr_long = profile_long(items, self.categories, self.skus)
        base, *parts = pl.collect_all(
            [lf.select("client_id").unique(), *win_qs, events, item_events, queries, *item_qs, sessions, cl_long, pr_long]
        )
        *tables, cl, pr = parts
        cl_wide = long_to_wide(cl, cluster_names(n_cl, self.n_price_groups, self.half_lives))
        shares = self._shares(cl_wide, n_cl)
        cl_wide = cl_wide.with_columns(pl.exclude("client_id").log1p())
        pr_wide = long_to_wide(pr, profile_names(self.categories, self.skus)).with_columns(pl.exclude("client_id").log1p())
        table = base.sort("client_id")
        for part in (*tables, cl_wide, shares, pr_wide):
            table = table.join(part, on="client_id", how="left")
        # a user absent from a part had no event of its kind: counts are 0, statistics stay missing
        return table.with_columns(pl.exclude("client_id", *nullable).fill_null(0.0)), nullable

    def _shares(self, cl_wide: pl.DataFrame, n_cl: int) -> pl.DataFrame:
        """Share of interest over name clusters, per item event type, at the longest half-life."""
        h = max(self.half_lives)
        out = {"client_id": cl_wide["client_id"]}
        for t in ITEM_EVENTS:
            cols = [f"{SHORT[t]}_namecl{i}_hl{h:g}d" for i in range(n_cl)]
            values, names = share_of_interest(cl_wide.select(cols).to_numpy(), max(n_cl, 1)) if n_cl else (
                np.zeros((len(cl_wide), 3), np.float32), ["top_share", "entropy", "touched"])
            for j, name in enumerate(names):
                out[f"{SHORT[t]}_cluster_{name}"] = values[:, j]
        return pl.DataFrame(out)


class FeaturesEncoder:
    """About 1,200 standardized handcrafted features per user."""

    name: ClassVar[str] = "features"
    preferred_normalise: ClassVar[str] = "none"  # standardized and clipped in transform

    def __init__(self, options: FeaturesOptions | None = None) -> None:
        self.options = o = options or FeaturesOptions()
        self.windows, self.n_clusters, self.n_price_groups = o.windows, o.n_clusters, o.n_price_groups
        self.half_lives = tuple(float(h) for h in o.half_lives)
        self.top_n, self.clip = o.top_n, o.clip

    def _table(self, window: InputWindow | None) -> "FeaturesTable":
        """The per-shard query with what it needs of the fit (no cache); `None`: an empty layout probe."""
        if window is None:
            clusters, cutoff = pl.DataFrame(schema={"sku": pl.Int64, "cluster": pl.Int64}), datetime(2000, 1, 1)
        else:
            clusters, cutoff = assign_clusters(window.products(), self.centres_), window.cutoff
        return FeaturesTable(
            cutoff, self.windows, len(self.centres_), self.n_price_groups, self.half_lives,
            self.pop_skus_, self.pop_log_, self.categories_, self.skus_, clusters,
        )

    def _layout(self) -> tuple[list[str], list[str]]:
        """(all raw column names in order, nullable ones), read off a query on an empty stream."""
        table, nullable = self._table(None).table(pl.LazyFrame(schema=STREAM_SCHEMA))
        return table.columns[1:], nullable

    # ----- the encoder protocol ------------------------------------------------------------
    def fit(self, window: InputWindow, run: Run | None = None) -> "FeaturesEncoder":
        run = run or Run()
        self.centres_ = fit_name_clusters(window.products(), self.n_clusters, run.seed)
        pop = window.stream().filter(IS_ITEM).group_by("sku").agg(pl.len()).sort("sku").collect()
        self.pop_skus_ = pop["sku"].to_numpy().astype(np.int64)
        self.pop_log_ = np.log1p(pop["len"].to_numpy().astype(np.float64))
        self.categories_, self.skus_ = most_bought(window, self.top_n)
        self.columns_, self.nullable_ = self._layout()
        # cache_: the fit clients' raw rows, for a transform of the same window
        self.scaler_, self.cache_ = fit_raw(
            window, self._table(window), self.columns_, frozenset(self.nullable_), self.clip, self._squash
        )
        return self

    def _squash(self, x: np.ndarray) -> np.ndarray:
        """log1p of the heavy-tailed columns (counts, durations, rates), in place: standardized raw
        counts spend the clip range on a few heavy users and squeeze everyone else near 0."""
        cols = [i for i, c in enumerate(self.columns_) if c.startswith(HEAVY_TAILED)]
        x[:, cols] = np.log1p(np.maximum(x[:, cols], 0.0))
        return x

    def raw(self, window: InputWindow, client_ids: np.ndarray) -> np.ndarray:
        """Unstandardized (len(client_ids), len(columns_)) float32; NaN marks a missing value."""
        check_fitted(self, "scaler_")
        table_fn = self._table(window)
        return cached_raw(self.cache_, window, client_ids, table_fn, self.columns_, frozenset(self.nullable_))

    def raw_table(self, window: InputWindow, client_ids: np.ndarray) -> pl.DataFrame:
        """The raw features with named columns (nulls where a value is missing), in the order of `client_ids`."""
        x = self.raw(window, client_ids)
        table = pl.DataFrame(x, schema=self.columns_, orient="row").fill_nan(None)
        return table.insert_column(0, pl.Series("client_id", np.asarray(client_ids, dtype=np.int64)))

    def write_raw_table(self, window: InputWindow, client_ids: np.ndarray, path: Path) -> None:
        """`raw_table` as parquet, written atomically (`ubp.io`)."""
        table = self.raw_table(window, client_ids)
        write_with(path, table.write_parquet)

    def transform(self, window: InputWindow, client_ids: np.ndarray) -> np.ndarray:
        """Squash and standardize the raw matrix in place, a block of rows at a time: the
        column-subset temporaries stay one block big instead of a fraction of the whole matrix."""
        check_fitted(self, "scaler_")
        nullable = frozenset(self.nullable_)
        x = cached_raw(self.cache_, window, client_ids, self._table(window), self.columns_, nullable, take=True)
        for rows in spans(len(x)):
            self.scaler_.transform(self._squash(x[rows]), inplace=True)
        return x

    def save(self, path: Path) -> None:
        params = {
            "windows": list(self.windows), "n_clusters": self.n_clusters, "n_price_groups": self.n_price_groups,
            "half_lives": list(self.half_lives), "top_n": self.top_n, "clip": self.clip,
            "columns": self.columns_, "nullable": self.nullable_,
        }
        arrays = {
            "centres": self.centres_, "pop_skus": self.pop_skus_, "pop_log": self.pop_log_,
            "categories": self.categories_, "skus": self.skus_,
            "mean": self.scaler_.mean, "std": self.scaler_.std,
        }
        save_state(path, params, arrays)

    @classmethod
    def load(cls, path: Path) -> "FeaturesEncoder":
        params, arrays = load_state(path)
        names = [f.name for f in fields(FeaturesOptions)]
        enc = cls(from_dict(FeaturesOptions, {k: params[k] for k in names}, str(path)))
        enc.columns_, enc.nullable_ = params["columns"], params["nullable"]
        for k in ("centres", "pop_skus", "pop_log", "categories", "skus"):
            setattr(enc, f"{k}_", arrays[k])
        enc.scaler_, enc.cache_ = Standardizer(arrays["mean"], arrays["std"], enc.clip), None
        return enc
