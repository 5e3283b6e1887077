"""`baseline`: the organisers' aggregated-features baseline, re-implemented with polars.

Same numbers as `baseline/aggregated_features_baseline` (docs/methods.md §C): per event type in their
order (buy, search, add, remove, visit) the total event count, then per window (1, 7, 30 days)
the counts of the top-10 values of sku / category / price (url for visits); for searches only the
mean query vector. Windows are measured back from each type's latest timestamp among the
relevant clients, top values are counted on those clients' events, as theirs. Unlike theirs an
absent event type gives zeros instead of a crash, clients without events get zero rows, and a
top list shorter than 10 is padded with zero columns so the width never depends on the data.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import ClassVar

import numpy as np
import polars as pl

from ubp.data.window import InputWindow
from ubp.encoders.base import Run, check_fitted
from ubp.encoders.frames import index_of, long_to_wide
from ubp.encoders.shard_tables import fit_clients, raw_matrix
from ubp.encoders.state import load_state, save_state
from ubp.encoders.top_items import top_values
from ubp.encoders.options import BaselineOptions
from ubp.layout import VECTOR_LEN, EventType

# Their EVENT_TYPE_TO_COLUMNS, in their order (which is also their feature order).
TYPE_COLUMNS: dict[str, tuple[str, ...]] = {
    "product_buy": ("sku", "category", "price"),
    "search_query": (),
    "add_to_cart": ("sku", "category", "price"),
    "remove_from_cart": ("sku", "category", "price"),
    "page_visit": ("url",),
}


def _code(kind: str) -> int:
    return EventType[kind.upper()].value


class BaselineEncoder:
    """The organisers' statistical + query features (~320 dims), unstandardized like theirs."""

    name: ClassVar[str] = "baseline"
    preferred_normalise: ClassVar[str] = "none"  # the organisers' entry is their raw features

    def __init__(self, options: BaselineOptions | None = None) -> None:
        self.options = options or BaselineOptions()
        self.days, self.top_n = self.options.days, self.options.top_n

    def fit(self, window: InputWindow, run: Run | None = None) -> "BaselineEncoder":
        rel = pl.Series(fit_clients(window), dtype=pl.Int64)
        queries = {}
        for kind, cols in TYPE_COLUMNS.items():
            events = window.events(kind).filter(pl.col("client_id").is_in(rel.implode()))
            queries[kind] = [events.select(pl.col("timestamp").max())]
            queries[kind] += [events.group_by(c).agg(pl.len()) for c in cols]
        flat = pl.collect_all([q for qs in queries.values() for q in qs])
        self.max_date_: dict[str, datetime | None] = {}
        self.top_: dict[str, dict[str, np.ndarray]] = {}
        for kind, cols in TYPE_COLUMNS.items():
            max_df, *counts = flat[: 1 + len(cols)]
            flat = flat[1 + len(cols) :]
            self.max_date_[kind] = max_df.item()
            self.top_[kind] = {c: top_values(df, c, self.top_n) for c, df in zip(cols, counts)}
        return self

    @property
    def columns_(self) -> list[str]:
        names = []
        for kind, cols in TYPE_COLUMNS.items():
            if not cols:
                names += [f"{kind}_query_mean_{j}" for j in range(VECTOR_LEN)]
                continue
            names.append(f"{kind}_count")
            names += [f"{kind}_{d}d_{c}_top{i}" for d in self.days for c in cols for i in range(self.top_n)]
        return names

    def _long(self, lf: pl.LazyFrame) -> pl.LazyFrame:
        """(client_id, col, value) for one shard: every feature of the layout in `columns_`."""
        parts, offset = [], 0

        def part(frame: pl.LazyFrame, col: pl.Expr, value: pl.Expr) -> pl.LazyFrame:
            return (
                frame.select("client_id", col.cast(pl.Int64).alias("col"), value.cast(pl.Float32).alias("value"))
                .drop_nulls("col")
            )

        for kind, cols in TYPE_COLUMNS.items():
            events = lf.filter(pl.col("event_type") == _code(kind))
            if not cols:
                tokens = events.select("client_id", pl.col("tokens").arr.to_list().alias("value"))
                tokens = tokens.with_columns(col=pl.lit(list(range(offset, offset + VECTOR_LEN)))).explode("value", "col")
                parts.append(part(tokens.group_by("client_id", "col").agg(pl.col("value").mean()), pl.col("col"), pl.col("value")))
                offset += VECTOR_LEN
                continue
            parts.append(part(events.group_by("client_id").agg(pl.len().alias("n")), pl.lit(offset), pl.col("n")))
            offset += 1
            max_date = self.max_date_[kind]
            for d in self.days:
                recent = events if max_date is None else events.filter(pl.col("timestamp") >= max_date - timedelta(days=d))
                for c in cols:
                    top = self.top_[kind][c]
                    hits = recent.select("client_id", (index_of(c, top) + offset).alias("col")).drop_nulls("col")
                    parts.append(part(hits.group_by("client_id", "col").agg(pl.len().alias("n")), pl.col("col"), pl.col("n")))
                    offset += self.top_n
        return pl.concat(parts)

    def _shard_table(self, lf: pl.LazyFrame) -> pl.DataFrame:
        return long_to_wide(self._long(lf).collect(), self.columns_)

    def transform(self, window: InputWindow, client_ids: np.ndarray) -> np.ndarray:
        check_fitted(self, "max_date_")
        return raw_matrix(window, client_ids, self._shard_table, self.columns_)

    def save(self, path: Path) -> None:
        arrays = {f"top__{k}__{c}": v for k, tops in self.top_.items() for c, v in tops.items()}
        max_date = {k: (v.isoformat() if v is not None else None) for k, v in self.max_date_.items()}
        save_state(path, {"days": list(self.days), "top_n": self.top_n, "max_date": max_date}, arrays)

    @classmethod
    def load(cls, path: Path) -> "BaselineEncoder":
        params, arrays = load_state(path)
        enc = cls(BaselineOptions(days=tuple(params["days"]), top_n=params["top_n"]))
        enc.max_date_ = {k: (datetime.fromisoformat(v) if v else None) for k, v in params["max_date"].items()}
        enc.top_ = {k: {c: arrays[f"top__{k}__{c}"] for c in cols} for k, cols in TYPE_COLUMNS.items()}
        return enc
