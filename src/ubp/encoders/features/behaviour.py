"""Behavioural features (docs/methods.md §D), per user, whole input window.

Cyclic time of day / week, activity momentum, diversity (entropy and Gini impurity over
categories, SKU exploration, URL revisits, popularity of what is touched), conversion (cart
abandonment, buys per search), price sensitivity, repeat purchases and segment flags.
"""

from __future__ import annotations

import math

import polars as pl

from ubp.encoders.features.windows import IS_ITEM, _safe_ratio, is_type
from ubp.layout import VECTOR_LEN

TAU = 2.0 * math.pi


def _cyclic(col: pl.Expr, period: float, name: str) -> list[pl.Expr]:
    angle = col.cast(pl.Float64) * (TAU / period)
    return [angle.sin().mean().alias(f"{name}_sin"), angle.cos().mean().alias(f"{name}_cos")]


def event_table(lf: pl.LazyFrame) -> tuple[pl.LazyFrame, list[str]]:
    """Per-user features that read every event (expects `age`, `hour`, `wday`): time of day / week,
    momentum and segment flags. Only sums, means and one mode, so polars' fast group-by paths apply."""
    hour = pl.col("hour")
    n7 = (pl.col("age") <= 7).sum()
    n14 = (pl.col("age") <= 14).sum()
    n28 = (pl.col("age") <= 28).sum()
    n_buy, n_cart, n_search = (is_type(t).sum() for t in ("product_buy", "add_to_cart", "search_query"))
    n_item = IS_ITEM.sum()
    exprs = [
        *_cyclic(hour, 24.0, "hour"),
        *_cyclic(pl.col("wday"), 7.0, "weekday"),
        hour.mode().sort().first().alias("peak_hour"),
        (pl.col("wday") >= 6).mean().alias("weekend_share"),
        _safe_ratio(n7 * 4.0, n28).alias("momentum_7_vs_28"),
        _safe_ratio(n14, n28 - n14).alias("momentum_14_vs_prev_14"),
        _safe_ratio(n_buy, n_search).alias("buys_per_search"),
        (n_buy > 0).alias("is_buyer"),
        ((n_cart > 0) & (n_buy == 0)).alias("is_cart_abandoner"),
        ((n_item == 0) & is_type("page_visit").any()).alias("is_browser_only"),
        (n_search > 0).alias("is_searcher"),
        (pl.col("age").min() <= 7).alias("is_recent"),
        (pl.len() == 1).alias("is_one_timer"),
    ]
    peak = pl.col("peak_hour").cast(pl.Float64) * (TAU / 24.0)
    table = (
        lf.group_by("client_id")
        .agg(exprs)
        .with_columns(peak_hour_sin=peak.sin(), peak_hour_cos=peak.cos())
        .drop("peak_hour")
        .with_columns(pl.exclude("client_id").cast(pl.Float64))
    )
    return table, ["momentum_7_vs_28", "momentum_14_vs_prev_14", "buys_per_search"]


def item_event_table(items: pl.LazyFrame) -> tuple[pl.LazyFrame, list[str]]:
    """Per-user features of the item events only (buy, cart, remove; expects `age`, `logpop`):
    exploration, popularity, price trend and buy rhythm. Users without item events are missing."""
    buy_gaps = -pl.col("age").filter(is_type("product_buy")).diff()  # days between consecutive buys (time-ordered)
    n_buy = is_type("product_buy").sum()
    price = pl.col("price").cast(pl.Float64)
    exprs = [
        (pl.col("sku").n_unique() / pl.len()).alias("sku_exploration_rate"),
        pl.col("logpop").mean().alias("item_log_popularity_mean"),
        _safe_ratio(pl.cov(pl.col("age"), price), pl.col("age").var()).alias("price_trend_per_day"),
        (pl.col("price").filter(is_type("product_buy")).mean() - pl.col("price").filter(is_type("add_to_cart")).mean())
        .alias("buy_minus_cart_price"),
        buy_gaps.mean().alias("buy_interval_days_mean"),
        buy_gaps.std().alias("buy_interval_days_std"),
        buy_gaps.min().alias("buy_interval_days_min"),
        _safe_ratio(n_buy - pl.col("sku").filter(is_type("product_buy")).n_unique(), n_buy).alias("repeat_buy_share"),
    ]
    table = items.group_by("client_id").agg(exprs).with_columns(pl.exclude("client_id").cast(pl.Float64))
    return table, [e.meta.output_name() for e in exprs]


def query_table(lf: pl.LazyFrame) -> tuple[pl.LazyFrame, list[str]]:
    """Mean query token vector per user (searches only: a small frame, so one cheap pass)."""
    names = [f"query_token_mean_{j}" for j in range(VECTOR_LEN)]
    tokens = pl.col("tokens")
    table = lf.filter(is_type("search_query")).group_by("client_id").agg(
        tokens.arr.get(j).cast(pl.Float64).mean().alias(name) for j, name in enumerate(names)
    )
    return table, names


def item_tables(items: pl.LazyFrame) -> tuple[list[pl.LazyFrame], list[str]]:
    """Per-user features of the item events that need a per-(user, item) step: category diversity, cart abandonment."""
    cats = (
        items.group_by("client_id", "category")
        .agg(pl.len().alias("n"))
        .with_columns(p=pl.col("n") / pl.col("n").sum().over("client_id"))
        .group_by("client_id")
        .agg(
            (-(pl.col("p") * pl.col("p").log())).sum().alias("category_entropy"),
            (1.0 - (pl.col("p") ** 2).sum()).alias("category_gini"),
        )
    )
    carts = (
        items.filter(is_type("add_to_cart") | is_type("product_buy"))
        .group_by("client_id", "sku")
        .agg(carted=is_type("add_to_cart").any(), bought=is_type("product_buy").any())
        .group_by("client_id")
        .agg(
            _safe_ratio((pl.col("carted") & ~pl.col("bought")).sum(), pl.col("carted").sum())
            .cast(pl.Float64)
            .alias("cart_abandonment")
        )
    )
    return [cats, carts], ["category_entropy", "category_gini", "cart_abandonment"]
