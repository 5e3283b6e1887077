"""Cluster features: k-means clusters of product names and price groups, time-decayed per user.

Product names are 16-d quantized vectors; `fit_name_clusters` groups them with k-means (seeded);
prices are quantile buckets 0..99, grouped into `n_price_groups` equal ranges. Per user and
item event type: log1p of exponentially time-decayed interaction counts per name cluster and per
price group (one half-life per `half_lives` entry), plus share-of-interest summaries.
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl
from sklearn.cluster import KMeans

from ubp.layout import ITEM_EVENTS, SHORT_NAMES as SHORT, EventType

KMEANS_SAMPLE = 50_000  # names to fit the centres on; every product is assigned afterwards


def product_vectors(products: pl.DataFrame) -> np.ndarray:
    """(n_products, 16) float32 name vectors (missing names are zero vectors)."""
    if products.is_empty():
        return np.zeros((0, 16), dtype=np.float32)
    names = products["name"].fill_null([0] * 16) if products["name"].null_count() else products["name"]
    return names.to_numpy().astype(np.float32)


def fit_name_clusters(products: pl.DataFrame, n_clusters: int, seed: int) -> np.ndarray:
    """k-means centres (k, 16) of product names; k shrinks when there are fewer distinct names."""
    x = product_vectors(products)
    if len(x) > KMEANS_SAMPLE:
        x = x[np.random.default_rng(seed).choice(len(x), KMEANS_SAMPLE, replace=False)]
    k = min(n_clusters, len(np.unique(x, axis=0))) if len(x) else 0
    if k == 0:
        return np.zeros((0, 16), dtype=np.float32)
    km = KMeans(n_clusters=k, random_state=seed, n_init=1, max_iter=50).fit(x)
    return km.cluster_centers_.astype(np.float32)


def assign_clusters(products: pl.DataFrame, centres: np.ndarray) -> pl.DataFrame:
    """(sku, cluster) of every product: its nearest centre."""
    x = product_vectors(products)
    if len(centres) == 0 or len(x) == 0:
        return pl.DataFrame({"sku": products["sku"], "cluster": pl.Series([None] * len(products), dtype=pl.Int64)})
    d = (x * x).sum(1, keepdims=True) - 2.0 * x @ centres.T + (centres * centres).sum(1)[None, :]
    return pl.DataFrame({"sku": products["sku"], "cluster": d.argmin(axis=1).astype(np.int64)})


def cluster_names(n_clusters: int, n_price_groups: int, half_lives: tuple[float, ...]) -> list[str]:
    return [
        f"{SHORT[t]}_{kind}{i}_hl{h:g}d"
        for t in ITEM_EVENTS
        for h in half_lives
        for kind, n in (("namecl", n_clusters), ("pricegrp", n_price_groups))
        for i in range(n)
    ]


def cluster_long(lf: pl.LazyFrame, n_clusters: int, n_price_groups: int, half_lives: tuple[float, ...]) -> pl.LazyFrame:
    """Long (client_id, col, value) decayed counts in the order of `cluster_names`.

    Expects columns `age` (days) and `cluster` (name cluster of the event's SKU)."""
    parts, offset = [], 0
    group = (pl.col("price").cast(pl.Int64).clip(0, 99) * n_price_groups // 100)
    for t in ITEM_EVENTS:
        events = lf.filter(pl.col("event_type") == EventType[t.upper()].value)
        for h in half_lives:
            weight = (-pl.col("age") * (math.log(2.0) / h)).exp()
            for col, n in ((pl.col("cluster"), n_clusters), (group, n_price_groups)):
                parts.append(
                    events.select("client_id", (col + offset).cast(pl.Int64).alias("col"), weight.alias("value"))
                    .drop_nulls("col")
                    .group_by("client_id", "col")
                    # summed in float64: a parallel group_by adds in no fixed order, and float32
                    # sums then differed run to run in the 7th digit (a seed must fix every result)
                    .agg(pl.col("value").sum().cast(pl.Float32))
                )
                offset += n
    return pl.concat(parts)


def share_of_interest(decayed: np.ndarray, block: int) -> tuple[np.ndarray, list[str]]:
    """Per consecutive block of `block` decayed counts: top share, entropy, number of clusters touched."""
    n_blocks = decayed.shape[1] // block
    x = decayed.reshape(len(decayed), n_blocks, block).astype(np.float64)
    total = x.sum(axis=2, keepdims=True)
    p = np.divide(x, total, out=np.zeros_like(x), where=total > 0)
    top = p.max(axis=2, initial=0.0)
    entropy = -(p * np.log(np.where(p > 0, p, 1.0))).sum(axis=2)
    touched = (x > 0).sum(axis=2)
    return np.concatenate([top, entropy, touched], axis=1).astype(np.float32), ["top_share", "entropy", "touched"]
