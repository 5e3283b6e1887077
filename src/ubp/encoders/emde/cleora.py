"""Cleora-style item vectors: iterated, normalised neighbour averaging over the user–item graph.

Only the item side is kept: each iteration maps items → users → items one shard at a time, and
each shard's graph holds only the items its users touch, so memory holds two item tables plus
one shard's block, never a user table (18.7M users would not fit beside 14M items at the real
scale).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
import scipy.sparse as sp

from ubp.data.window import InputWindow
from ubp.encoders.emde.items import ItemVocab, item_events
from ubp.encoders.shard_tables import TableJob, shard_events, shard_jobs
from ubp.engines import map_shards
from ubp.hashing import stable_hash


@dataclass(frozen=True)
class ShardGraph:
    """One shard's users × the items they touch (edge weight = number of events joining them)."""

    adjacency: sp.csr_matrix  # (users of the shard, len(items))
    items: np.ndarray  # vocabulary index of each column


def start_vectors(vocab: ItemVocab, dim: int, seed: int) -> np.ndarray:
    """Uniform(-1, 1) start drawn from a hash of each item's id: an item's start does not
    depend on which other items the window holds, only on its id, kind and the seed."""
    keys = np.r_[stable_hash(vocab.sku_ids, salt=2 * seed), stable_hash(vocab.url_ids, salt=2 * seed + 1)]
    out = np.empty((len(keys), dim), np.float32)
    for j in range(dim):  # one column at a time: a (n_items, dim) uint64 table would be twice the result
        with np.errstate(over="ignore"):
            bits = stable_hash(keys + np.uint64(j))
        out[:, j] = (bits >> np.uint64(11)).astype(np.float64) * 2.0**-52 - 1.0
    return out


def edge_counts(job: TableJob) -> pl.DataFrame:
    """One shard's (client, item key, events joining them): the part that runs on the engine's workers."""
    return item_events(shard_events(job)).group_by("client_id", "is_visit", "item_id").agg(pl.len().alias("w")).collect()


def shard_graph(counts: pl.DataFrame, vocab: ItemVocab) -> ShardGraph:
    """The graph of one shard's `edge_counts`, items indexed in `vocab`."""
    # sorted, so that sparse products sum in the same order on every run
    edges = vocab.index(counts.lazy()).select("client_id", "item", "w").sort("client_id", "item").collect()
    _, rows = np.unique(edges["client_id"].to_numpy(), return_inverse=True)
    items, cols = np.unique(edges["item"].to_numpy(), return_inverse=True)
    n_users = int(rows.max()) + 1 if len(rows) else 0
    adjacency = sp.csr_matrix((edges["w"].to_numpy().astype(np.float32), (rows, cols)), shape=(n_users, len(items)))
    return ShardGraph(adjacency, items)


def propagate(graphs: list[ShardGraph], start: np.ndarray, iterations: int) -> np.ndarray:
    """x ← L2-normalise(Σ_shards Aᵀ D_user⁻¹ A x), `iterations` times."""
    inv_degree = [1.0 / np.maximum(np.asarray(g.adjacency.sum(axis=1)).ravel(), 1.0) for g in graphs]
    x = start
    for _ in range(iterations):
        acc = np.zeros_like(x)
        for g, inv in zip(graphs, inv_degree):
            users = (g.adjacency @ x[g.items]) * inv[:, None].astype(np.float32)
            acc[g.items] += g.adjacency.T @ users
        acc /= np.maximum(np.sqrt(np.einsum("ij,ij->i", acc, acc)), 1e-12)[:, None]
        x = acc
    return x


def item_vectors(window: InputWindow, vocab: ItemVocab, dim: int, iterations: int, seed: int) -> np.ndarray:
    """(n_items, dim) float32 unit vectors, rows in `vocab` order."""
    counts = map_shards(edge_counts, shard_jobs(window), near=window.root)
    graphs = [shard_graph(c, vocab) for c in counts if c.width]
    return propagate(graphs, start_vectors(vocab, dim, seed), iterations)
