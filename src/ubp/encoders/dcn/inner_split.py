"""Leakage-free supervision: an inner split of the input window itself.

The encoder only ever gets the input window (which ends at the train-target start). It plays the
challenge again inside it: features come from the events before `cutoff − horizon`, labels from
the events in [cutoff − horizon, cutoff); an earlier split does the same a horizon before, and so
on. Targets mirror the local split's choice (`ubp.data.targets`): the top SKUs / categories most
bought before the latest inner cutoff; churn counts only for users who bought before their split's
cutoff (the challenge's active clients).
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
from ubp.encoders.top_items import N_PRICES, most_bought


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
    """Labels (n, width) of the inner split in the order of `client_ids`, their weights, task slices."""

    labels: np.ndarray  # float32: one column block per task, in the order asked
    weights: np.ndarray  # float32: 1 where a label counts (churn: buyers before the inner cutoff only)
    tasks: list[slice]
    skus: np.ndarray
    categories: np.ndarray


def inner_labels(
    window: InputWindow,
    inner: InputWindow,
    client_ids: np.ndarray,
    n_targets: int,
    tasks: tuple[str, ...],
    targets: tuple[np.ndarray, np.ndarray] | None = None,
) -> InnerLabels:
    """Labels of `client_ids` from `window`'s buys in [inner.cutoff, window.cutoff).

    The heads mirror the challenge's tasks: `churn` (no buy in the horizon, counted for clients who
    bought before it), `conversion` (the same label over every client), `sku` / `category` (which of
    the target categories and SKUs were bought: `targets`, else the inner window's most bought) and
    `price` (which of the 100 price buckets).
    """
    client_ids = np.asarray(client_ids, dtype=np.int64)
    categories, skus = targets if targets is not None else most_bought(inner, n_targets)
    late = (
        window.events("product_buy")
        .filter(pl.col("timestamp") >= inner.cutoff)
        .select("client_id", "sku", "category", pl.col("price").cast(pl.Int64).clip(0, N_PRICES - 1))
        .collect()
    )
    no_buy = np.ones((len(client_ids), 1), dtype=np.float32)  # until a late buy shows otherwise
    _mark(no_buy, late["client_id"].to_numpy(), np.zeros(len(late), np.int64), client_ids, value=0.0)
    blocks, masks = [], []
    for task in tasks:
        if task in ("churn", "conversion"):
            label = no_buy
            weight = np.ones_like(label)
            if task == "churn":
                buyers = inner.events("product_buy").select(pl.col("client_id").unique()).collect()["client_id"]
                weight[:, 0] = np.isin(client_ids, buyers.to_numpy())
        else:
            values = {"sku": skus, "category": categories, "price": np.arange(N_PRICES)}[task]
            label = np.zeros((len(client_ids), len(values)), dtype=np.float32)
            hit = late.select("client_id", index_of(task, values).alias("j")).drop_nulls("j")
            _mark(label, hit["client_id"].to_numpy(), hit["j"].to_numpy(), client_ids, value=1.0)
            weight = np.ones_like(label)
        blocks.append(label)
        masks.append(weight)
    edges = np.cumsum([0] + [b.shape[1] for b in blocks])
    slices = [slice(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]
    return InnerLabels(np.concatenate(blocks, axis=1), np.concatenate(masks, axis=1), slices, skus, categories)


def _mark(labels: np.ndarray, event_clients: np.ndarray, cols: np.ndarray, client_ids: np.ndarray, value: float) -> None:
    """Set labels[row, col] = value for every (client, col) event, at every row of that client."""
    src, dst = rows_of(client_ids, event_clients.astype(np.int64))
    labels[src, cols[dst].astype(np.int64)] = value
