"""A synthetic world rewritten in a real shop's own types, to exercise `prepare`'s conversions.

Same events, same instants; only the types change: ISO-8601 local timestamps with a UTC offset,
string ids, float prices in money units, free-text product names and search queries, and the
relevant clients as strings (plus a few that never had an event).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import polars as pl

from ubp.layout import EVENT_TYPES, PROPERTIES_FILE

ID_PREFIX = {"client_id": "c-", "sku": "s-", "category": "k-", "url": "u-"}


def iso_with_offset(frame: pl.DataFrame, hours: int) -> pl.DataFrame:
    """Timestamps as local ISO-8601 strings `YYYY-MM-DDTHH:MM:SS.000+HH:00` of the same instants."""
    local = pl.col("timestamp").str.to_datetime("%Y-%m-%d %H:%M:%S") + pl.duration(hours=hours)
    return frame.with_columns(local.dt.strftime(f"%Y-%m-%dT%H:%M:%S.000+{hours:02d}:00").alias("timestamp"))


def string_ids(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.with_columns(
        pl.format("{}{}", pl.lit(prefix), pl.col(c)).alias(c) for c, prefix in ID_PREFIX.items() if c in frame.columns
    )


def write_shop_log(world: Path, out: Path, n_unseen: int = 7) -> Path:
    """`world`'s raw files in a shop's types under `out`; `n_unseen` relevant clients have no event."""
    (out / "input").mkdir(parents=True)
    products = pl.read_parquet(world / PROPERTIES_FILE)
    prices = products["price"].to_numpy().astype(np.float64) * 3.17 + np.linspace(0.0, 0.5, len(products)) + 0.99
    string_ids(products).with_columns(
        pl.Series("price", prices),
        pl.format("product {} of category {}", pl.col("sku"), pl.col("category")).alias("name"),
    ).write_parquet(out / PROPERTIES_FILE)
    for hours, kind in enumerate(EVENT_TYPES):
        events = string_ids(iso_with_offset(pl.read_parquet(world / f"{kind}.parquet"), hours))
        if "query" in events.columns:
            events = events.with_columns(pl.format("query {}", pl.col("query").str.slice(0, 12)).alias("query"))
        events.write_parquet(out / f"{kind}.parquet")
    relevant = np.load(world / "input" / "relevant_clients.npy").astype(str)
    unseen = np.array([f"new-{i}" for i in range(n_unseen)])
    np.save(out / "input" / "relevant_clients.npy", np.concatenate([np.char.add(ID_PREFIX["client_id"], relevant), unseen]))
    return out


def raw_copy(world: Path, out: Path) -> Path:
    """The raw files of `world` (no prepared store, no split outputs) under `out`."""
    (out / "input").mkdir(parents=True)
    for name in [PROPERTIES_FILE, *(f"{t}.parquet" for t in EVENT_TYPES)]:
        shutil.copy(world / name, out / name)
    shutil.copy(world / "input" / "relevant_clients.npy", out / "input" / "relevant_clients.npy")
    return out
