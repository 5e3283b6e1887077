"""Leakage-free supervision: an inner split of the input window itself.

The encoder only ever gets the input window (which ends at the train-target start). It plays the
challenge again inside it: features come from the events before `cutoff − horizon`, labels from
the events in [cutoff − horizon, cutoff). Targets mirror the local split's choice
(`ubp.data.targets`): the top SKUs / categories most bought before the inner cutoff; churn counts
only for users who bought before it (the challenge's active clients).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl

from ubp.data.window import InputWindow, write_window
from ubp.encoders.frames import index_of
from ubp.encoders.shard_tables import rows_of
from ubp.encoders.top_items import most_bought


def inner_cutoff(window: InputWindow, horizon_days: int) -> datetime:
    return window.cutoff - timedelta(days=horizon_days)


def write_inner_window(window: InputWindow, horizon_days: int, data_dir: Path) -> InputWindow:
    """The events before the inner cutoff as a window of its own under `data_dir/input`."""
    return write_window(
        window.stream(), window.products(), inner_cutoff(window, horizon_days), Path(data_dir) / "input",
        window.relevant_clients,
    )


@dataclass(frozen=True)
class InnerLabels:
    """Labels (n, 1 + n_sku + n_cat) of the inner split in the order of `client_ids`, their weights, task slices."""

    labels: np.ndarray  # float32: churn | bought each target SKU | bought each target category
    weights: np.ndarray  # float32: 1 where a label counts (churn: buyers before the inner cutoff only)
    tasks: list[slice]
    skus: np.ndarray
    categories: np.ndarray


def inner_labels(window: InputWindow, inner: InputWindow, client_ids: np.ndarray, n_targets: int) -> InnerLabels:
    """Labels of `client_ids` from `window`'s buys in [inner.cutoff, window.cutoff), targets from `inner`."""
    client_ids = np.asarray(client_ids, dtype=np.int64)
    categories, skus = most_bought(inner, n_targets)
    n, k_sku, k_cat = len(client_ids), len(skus), len(categories)
    late = (
        window.events("product_buy")
        .filter(pl.col("timestamp") >= inner.cutoff)
        .select("client_id", "sku", "category")
        .collect()
    )
    labels = np.zeros((n, 1 + k_sku + k_cat), dtype=np.float32)
    labels[:, 0] = 1.0  # churn until a late buy shows otherwise
    _mark(labels, late["client_id"].to_numpy(), np.zeros(len(late), np.int64), client_ids, value=0.0)
    for col, values, offset in (("sku", skus, 1), ("category", categories, 1 + k_sku)):
        hit = late.select("client_id", index_of(col, values).alias("j")).drop_nulls("j")
        _mark(labels, hit["client_id"].to_numpy(), hit["j"].to_numpy() + offset, client_ids, value=1.0)
    weights = np.ones_like(labels)
    buyers = inner.events("product_buy").select(pl.col("client_id").unique()).collect()["client_id"].to_numpy()
    weights[:, 0] = np.isin(client_ids, buyers)
    tasks = [slice(0, 1), slice(1, 1 + k_sku), slice(1 + k_sku, 1 + k_sku + k_cat)]
    return InnerLabels(labels, weights, tasks, skus, categories)


def _mark(labels: np.ndarray, event_clients: np.ndarray, cols: np.ndarray, client_ids: np.ndarray, value: float) -> None:
    """Set labels[row, col] = value for every (client, col) event, at every row of that client."""
    src, dst = rows_of(client_ids, event_clients.astype(np.int64))
    labels[src, cols[dst].astype(np.int64)] = value
