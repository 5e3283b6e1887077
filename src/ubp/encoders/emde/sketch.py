"""Per-user sketches: time-decayed counts of a user's items per bucket, event group and half-life.

Column layout, for group g (buy, cart add, cart removal, visit = the event-type codes 0..3),
half-life h, partition p and bucket b: ((g · n_half_lives + h) · n_partitions + p) · n_buckets + b.
An event of age a days (back from the window's cutoff) adds 0.5 ** (a / half_life). Sums are
additive over events, so a sketch never needs the user's other events or a retrained model.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
import polars as pl
import scipy.sparse as sp

from ubp.encoders.emde.items import VISIT, ItemVocab, item_events
from ubp.encoders.shard_tables import TableJob, shard_events
from ubp.layout import US_PER_DAY

N_GROUPS = VISIT + 1


def sketch_width(n_half_lives: int, n_partitions: int, n_buckets: int) -> int:
    return N_GROUPS * n_half_lives * n_partitions * n_buckets


@dataclass(frozen=True)
class DecayedWeights:
    """One shard's decayed event weights per (client, event type, item key): the part of a sketch
    that runs on the engine's workers (it needs no vocabulary and no codes)."""

    cutoff: datetime
    half_lives: tuple[float, ...]

    def query(self, events: pl.LazyFrame) -> pl.LazyFrame:
        age = (pl.lit(self.cutoff, dtype=pl.Datetime("us")) - pl.col("timestamp")).dt.total_microseconds() / US_PER_DAY
        decays = [(age * (-np.log(2.0) / h)).exp().sum().alias(f"w{i}") for i, h in enumerate(self.half_lives)]
        return item_events(events).group_by("client_id", "event_type", "is_visit", "item_id").agg(decays)

    def __call__(self, job: TableJob) -> pl.DataFrame:
        return self.query(shard_events(job)).collect()


def sketch_rows(
    weights: pl.DataFrame, vocab: ItemVocab, codes: np.ndarray, half_lives: tuple[float, ...], n_buckets: int
) -> tuple[np.ndarray, sp.csr_matrix]:
    """Sorted client ids with item events in `weights` (a `DecayedWeights` table), and their sketch
    rows (float32 CSR). `codes` is (n_items, n_partitions): each vocabulary item's bucket in each partition."""
    keys = ["client_id", "event_type", "item"]
    # sorted, so that float sums of bucket collisions always run in the same order
    agg = vocab.index(weights.lazy()).sort(keys).collect() if weights.width else pl.DataFrame(
        schema={"client_id": pl.Int64, "event_type": pl.UInt8, "item": pl.Int64})
    users, rows = np.unique(agg["client_id"].to_numpy(), return_inverse=True)
    n_h, n_p = len(half_lives), codes.shape[1]
    shape = (len(users), sketch_width(n_h, n_p, n_buckets))
    group = agg["event_type"].to_numpy().astype(np.int64)
    buckets = codes[agg["item"].to_numpy()].astype(np.int64)  # (m, n_p)
    rows = np.broadcast_to(rows[:, None], buckets.shape).ravel()
    out = sp.csr_matrix(shape, dtype=np.float32)
    for h in range(n_h):
        cols = ((group * n_h + h)[:, None] * n_p + np.arange(n_p)) * n_buckets + buckets
        weights_h = np.broadcast_to(agg[f"w{h}"].to_numpy().astype(np.float32)[:, None], buckets.shape).ravel()
        out = out + sp.csr_matrix((weights_h, (rows, cols.ravel())), shape=shape)
    return users.astype(np.int64), out


def decayed_sketch(
    events: pl.LazyFrame,
    vocab: ItemVocab,
    codes: np.ndarray,
    cutoff: datetime,
    half_lives: tuple[float, ...],
    n_buckets: int,
) -> tuple[np.ndarray, sp.csr_matrix]:
    """Sketch rows of the clients of `events` in one process (`DecayedWeights` then `sketch_rows`)."""
    weights = DecayedWeights(cutoff, tuple(half_lives)).query(events).collect()
    return sketch_rows(weights, vocab, codes, tuple(half_lives), n_buckets)
