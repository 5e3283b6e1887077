"""Target definition files of a local split (docs/protocol.md §4, the local split's choice).

The organisers ship these files with the data and never say exactly how they were built, so a
local split derives them, and only when they are absent (a shipped file always wins):

- `propensity_{category,sku}.npy`: the 100 most bought in the input window (ties to the smaller id);
- `propensity_price.npy`: the buckets 0..99 (or the distinct prices when they leave that range);
- `propensity_new_sku.npy`: SKUs bought in the train-target window that no input-window event
  mentions, most bought first, up to 100;
- `popularity_propensity_*.npy`: input-window purchase counts of each target (train-target counts
  for new SKUs). Novelty divides by the top counts, so a vector is never all zeros: an all-zero
  vector falls back to train-target counts, then to ones;
- `active_clients.npy`: relevant clients with a purchase in the input window.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from ubp import store

N_TARGETS = 100
PRICE_BUCKETS = 100


@dataclass(frozen=True)
class Purchases:
    """Purchases (sku, category, price) of the two windows a target choice may look at."""

    input: pl.DataFrame  # product_buy before train_target_start
    train: pl.DataFrame  # product_buy in the train-target window
    input_skus: pl.Series  # every SKU any input-window event mentions
    prices: pl.Series  # price of every product


def write_target_files(
    target_dir: str, out_dir: str, buys: Purchases, relevant_clients: np.ndarray, buyers: pl.Series
) -> list[str]:
    """Write into `out_dir` the definition files missing from `target_dir` (folders or store
    locations); returns notes for the summary."""
    notes: list[str] = []
    new = buys.train.filter(~pl.col("sku").is_in(buys.input_skus.implode()))
    counted = [(buys.input, "input-window purchases"), (buys.train, "train-target purchases")]
    choices = {
        "propensity_category": (lambda: _most_bought(buys.input, buys.train, "category"), counted, "category"),
        "propensity_sku": (lambda: _most_bought(buys.input, buys.train, "sku"), counted, "sku"),
        "propensity_price": (lambda: _price_targets(buys.prices), counted, "price"),
        "propensity_new_sku": (lambda: _most_bought(new, new, "sku"), [(new, "train-target purchases")], "sku"),
    }
    for task, (choose, sources, col) in choices.items():
        targets_path = store.join(target_dir, f"{task}.npy")
        if store.is_file(targets_path):
            targets = store.load_npy(targets_path).astype(np.int64)
        else:
            targets = choose()
            store.save_npy(store.join(out_dir, f"{task}.npy"), targets)
            notes.append(f"{task}.npy: derived ({len(targets)} targets)")
            if len(targets) == 0:
                notes.append(f"{task}: no target qualifies in this world; the task cannot be scored")
        popularity_name = f"popularity_{task}.npy"
        if not store.is_file(store.join(target_dir, popularity_name)):
            popularity, source = _popularity(targets, sources, col)
            store.save_npy(store.join(out_dir, popularity_name), popularity)
            notes.append(f"{popularity_name}: derived from {source}")
    if not store.is_file(store.join(target_dir, "active_clients.npy")):
        active = np.intersect1d(np.asarray(relevant_clients, np.int64), buyers.to_numpy().astype(np.int64))
        store.save_npy(store.join(out_dir, "active_clients.npy"), active)
        notes.append(f"active_clients.npy: derived ({len(active)} relevant clients with an input-window purchase)")
    return notes


def _counts(buys: pl.DataFrame, col: str) -> pl.DataFrame:
    """Purchases per value of `col`, most bought first, ties to the smaller id."""
    return buys.group_by(col).agg(pl.len().alias("n")).sort(["n", col], descending=[True, False])


def _most_bought(primary: pl.DataFrame, fallback: pl.DataFrame, col: str) -> np.ndarray:
    """The N_TARGETS most bought values; from `fallback` when `primary` has no purchase."""
    source = primary if len(primary) else fallback
    return _counts(source, col)[col].head(N_TARGETS).to_numpy().astype(np.int64)


def _price_targets(prices: pl.Series) -> np.ndarray:
    """All price buckets 0..99, or the distinct prices when the catalogue leaves that range."""
    if len(prices) and (prices.min() < 0 or prices.max() >= PRICE_BUCKETS):
        return np.sort(prices.unique().to_numpy()).astype(np.int64)
    return np.arange(PRICE_BUCKETS, dtype=np.int64)


def _popularity(targets: np.ndarray, sources: list[tuple[pl.DataFrame, str]], col: str) -> tuple[np.ndarray, str]:
    """Purchase counts of `targets` in order from the first source where one was bought; never all zeros."""
    if len(targets) == 0:
        return np.zeros(0, dtype=np.int64), "no targets"
    for frame, label in sources:
        counts = _aligned_counts(targets, frame, col)
        if counts.any():
            return counts, label
    return np.ones(len(targets), dtype=np.int64), "ones (no purchase of any target)"


def _aligned_counts(targets: np.ndarray, buys: pl.DataFrame, col: str) -> np.ndarray:
    ids = pl.DataFrame({col: targets}, schema={col: pl.Int64})
    joined = ids.join(_counts(buys, col).with_columns(pl.col(col).cast(pl.Int64)), on=col, how="left", maintain_order="left")
    return joined["n"].fill_null(0).to_numpy().astype(np.int64)
