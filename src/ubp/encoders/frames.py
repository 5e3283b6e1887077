"""Polars building blocks of per-user tables: event ages, value indexes, long-to-wide counts."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import polars as pl

from ubp.layout import US_PER_DAY


def age_days(cutoff: datetime) -> pl.Expr:
    """Days from each event to the cutoff (float): 0 = just before the cutoff."""
    return (pl.lit(cutoff) - pl.col("timestamp")).dt.total_microseconds() / US_PER_DAY


def index_of(column: str, values: np.ndarray) -> pl.Expr:
    """Position of each row's `column` value in `values` (null when absent)."""
    return pl.col(column).replace_strict(
        pl.Series(values, dtype=pl.Int64), pl.Series(np.arange(len(values)), dtype=pl.Int64), default=None
    )


def long_to_wide(long: pl.DataFrame, names: list[str]) -> pl.DataFrame:
    """Wide table (client_id + `names`) from a long (client_id, col, value) one; duplicates add up.

    A numpy scatter rather than a pivot, so every named column exists even when no row hits it."""
    ids, inverse = np.unique(long["client_id"].to_numpy(), return_inverse=True)
    dense = np.zeros((len(ids), len(names)), dtype=np.float32)
    if len(long):
        np.add.at(dense, (inverse, long["col"].to_numpy().astype(np.int64)), long["value"].to_numpy().astype(np.float32))
    return pl.DataFrame({"client_id": ids.astype(np.int64)}).hstack(
        pl.DataFrame(dense, schema=names, orient="row") if len(ids) else pl.DataFrame(schema={n: pl.Float32 for n in names})
    )
