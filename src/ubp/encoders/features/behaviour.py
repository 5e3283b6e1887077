"""Behavioural features of the autoencoder paper (methods.md §D), per user, whole input window.

Cyclic time of day / week, activity momentum, diversity (entropy and Gini impurity over
categories, SKU exploration, URL revisits, popularity of what is touched), conversion (cart
abandonment, buys per search), price sensitivity, repeat purchases and segment flags.
"""

from __future__ import annotations

import math

import polars as pl

from ubp.encoders.features.windows import _safe_ratio, is_type
from ubp.layout import VECTOR_LEN

TAU = 2.0 * math.pi
IS_ITEM = pl.col("event_type") <= 2


def _cyclic(col: pl.Expr, period: float, name: str) -> list[pl.Expr]:
    angle = col.cast(pl.Float64) * (TAU / period)
    return [angle.sin().mean().alias(f"{name}_sin"), angle.cos().mean().alias(f"{name}_cos")]


def event_table(lf: pl.LazyFrame) -> tuple[pl.LazyFrame, list[str]]:
    """Per-user features computed straight from the events (expects `age`, `hour`, `wday`, `logpop`)."""
    hour = pl.col("hour")
    peak = (hour.mode().sort().first().cast(pl.Float64) * (TAU / 24.0))
    buy_age = pl.col("age").filter(is_type("product_buy"))
    buy_gaps = -buy_age.diff()  # days between consecutive buys (stream is time-ordered)
    item_age = pl.col("age").filter(IS_ITEM)
    item_price = pl.col("price").cast(pl.Float64).filter(IS_ITEM)
    n7 = (pl.col("age") <= 7).sum()
    n14 = (pl.col("age") <= 14).sum()
    n28 = (pl.col("age") <= 28).sum()
    n_buy, n_cart, n_search = (is_type(t).sum() for t in ("product_buy", "add_to_cart", "search_query"))
    n_item = IS_ITEM.sum()
    exprs = [
        *_cyclic(hour, 24.0, "hour"),
        *_cyclic(pl.col("wday"), 7.0, "weekday"),
        peak.sin().alias("peak_hour_sin"),
        peak.cos().alias("peak_hour_cos"),
        (pl.col("wday") >= 6).mean().alias("weekend_share"),
        _safe_ratio(n7 * 4.0, n28).alias("momentum_7_vs_28"),
        _safe_ratio(n14, n28 - n14).alias("momentum_14_vs_prev_14"),
        _safe_ratio(pl.col("sku").filter(IS_ITEM).n_unique(), n_item).alias("sku_exploration_rate"),
        pl.col("logpop").filter(IS_ITEM).mean().alias("item_log_popularity_mean"),
        _safe_ratio(n_buy, n_search).alias("buys_per_search"),
        _safe_ratio(pl.cov(item_age, item_price), item_age.var()).alias("price_trend_per_day"),
        (pl.col("price").filter(is_type("product_buy")).mean() - pl.col("price").filter(is_type("add_to_cart")).mean())
        .alias("buy_minus_cart_price"),
        buy_gaps.mean().alias("buy_interval_days_mean"),
        buy_gaps.std().alias("buy_interval_days_std"),
        buy_gaps.min().alias("buy_interval_days_min"),
        _safe_ratio(n_buy - pl.col("sku").filter(is_type("product_buy")).n_unique(), n_buy).alias("repeat_buy_share"),
        (n_buy > 0).alias("is_buyer"),
        ((n_cart > 0) & (n_buy == 0)).alias("is_cart_abandoner"),
        ((n_item == 0) & is_type("page_visit").any()).alias("is_browser_only"),
        (n_search > 0).alias("is_searcher"),
        (pl.col("age").min() <= 7).alias("is_recent"),
        (pl.len() == 1).alias("is_one_timer"),
    ]
    nullable = [
        "momentum_7_vs_28", "momentum_14_vs_prev_14", "sku_exploration_rate",
        "item_log_popularity_mean", "buys_per_search", "price_trend_per_day", "buy_minus_cart_price",
        "buy_interval_days_mean", "buy_interval_days_std", "buy_interval_days_min", "repeat_buy_share",
    ]
    table = lf.group_by("client_id").agg(exprs).with_columns(pl.exclude("client_id").cast(pl.Float64))
    return table, nullable


def query_table(lf: pl.LazyFrame) -> tuple[pl.LazyFrame, list[str]]:
    """Mean query token vector per user (searches only: a small frame, so one cheap pass)."""
    names = [f"query_token_mean_{j}" for j in range(VECTOR_LEN)]
    tokens = pl.col("tokens")
    table = lf.filter(is_type("search_query")).group_by("client_id").agg(
        tokens.arr.get(j).cast(pl.Float64).mean().alias(name) for j, name in enumerate(names)
    )
    return table, names


def item_tables(lf: pl.LazyFrame) -> tuple[list[pl.LazyFrame], list[str]]:
    """Per-user features that need a per-(user, item) step: category diversity, cart abandonment."""
    cats = (
        lf.filter(IS_ITEM)
        .group_by("client_id", "category")
        .agg(pl.len().alias("n"))
        .with_columns(p=pl.col("n") / pl.col("n").sum().over("client_id"))
        .group_by("client_id")
        .agg(
            (-(pl.col("p") * pl.col("p").log())).sum().alias("category_entropy"),
            (1.0 - (pl.col("p") ** 2).sum()).alias("category_gini"),
        )
    )
    carts = (
        lf.filter(is_type("add_to_cart") | is_type("product_buy"))
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
