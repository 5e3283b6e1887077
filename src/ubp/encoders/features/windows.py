"""Basic windowed features: per user, over the last 7/14/28/60 days and the whole input window.

About 40 numbers per window (docs/methods.md §C, "basic"): counts per event type, distinct items,
price statistics per item event type, buy/cart/remove ratios, recency per type, tenure, active
days and inter-event gaps. Statistics of an empty set are null (explicit missing values).
"""

from __future__ import annotations

import polars as pl

from ubp.layout import EVENT_TYPES, ITEM_CODES, ITEM_EVENTS, SHORT_NAMES as SHORT, EventType

WINDOWS: tuple[int | None, ...] = (7, 14, 28, 60, None)  # None = the whole input window
IS_ITEM = pl.col("event_type").is_in(ITEM_CODES)  # buy, add to cart, remove from cart


def is_type(kind: str) -> pl.Expr:
    return pl.col("event_type") == EventType[kind.upper()].value


def _safe_ratio(num: pl.Expr, den: pl.Expr) -> pl.Expr:
    """num / den, null when den is 0 (a ratio of nothing is missing, not zero)."""
    return pl.when(den > 0).then(num / den)


def window_features(days: int | None) -> tuple[list[pl.Expr], list[str]]:
    """Aggregations (for a group_by client over the window's events only) and the nullable names.

    Expects columns `age` (days before the cutoff), `day` (date) and `gap_h` (hours since the
    previous event of the window, null for its first). Distinct URLs / queries: `distinct_table`."""
    sfx = f"{days}d" if days is not None else "all"
    is_item = pl.col("event_type") <= EventType.REMOVE_FROM_CART.value
    exprs: list[pl.Expr] = []
    nullable: list[str] = []

    def add(expr: pl.Expr, name: str, can_be_null: bool = False) -> None:
        exprs.append(expr.cast(pl.Float64).alias(f"{name}_{sfx}"))
        if can_be_null:
            nullable.append(f"{name}_{sfx}")

    n = {t: is_type(t).sum() for t in EVENT_TYPES}
    for t in EVENT_TYPES:
        add(n[t], f"n_{SHORT[t]}")
        add(n[t] > 0, f"has_{SHORT[t]}")
    n_all = pl.len()
    add(n_all, "n_events")
    add(pl.col("sku").filter(is_item).n_unique(), "distinct_skus")
    add(pl.col("category").filter(is_item).n_unique(), "distinct_categories")
    for t in ITEM_EVENTS:
        price = pl.col("price").cast(pl.Float64).filter(is_type(t))
        for stat in ("mean", "min", "max", "std"):
            add(getattr(price, stat)(), f"price_{stat}_{SHORT[t]}", True)
    n_items = n["product_buy"] + n["add_to_cart"] + n["remove_from_cart"]
    add(_safe_ratio(n["product_buy"], n["add_to_cart"]), "buy_per_cart", True)
    add(_safe_ratio(n["remove_from_cart"], n["add_to_cart"]), "remove_per_cart", True)
    add(_safe_ratio(n["product_buy"], n_items), "buy_share_of_items", True)
    for t in EVENT_TYPES:
        add(pl.col("age").filter(is_type(t)).min(), f"days_since_{SHORT[t]}", True)
    add(pl.col("age").max(), "days_since_first", True)
    active_days = pl.col("day").n_unique()
    add(active_days, "active_days")
    add(_safe_ratio(n_all, active_days), "events_per_active_day", True)
    for stat in ("mean", "std", "max"):
        add(getattr(pl.col("gap_h"), stat)(), f"gap_hours_{stat}", True)
    return exprs, nullable


def window_tables(lf: pl.LazyFrame, windows: tuple[int | None, ...] = WINDOWS) -> tuple[list[pl.LazyFrame], list[str], list[str]]:
    """One per-user table per window (events with age <= days; None = all), plus the distinct URL
    and query tables; all column names, nullable names.

    Expects `gap_h` / `prev_age` (hours since / age of the user's previous event). Each window
    filters its rows first, so every aggregation runs on plain columns (polars' fast path)."""
    tables, columns, nullable = [], [], []
    for w in windows:
        exprs, null = window_features(w)
        rows = lf if w is None else lf.filter(pl.col("age") <= w).with_columns(
            gap_h=pl.when(pl.col("prev_age") <= w).then(pl.col("gap_h"))  # both ends inside the window
        )
        tables.append(rows.group_by("client_id").agg(exprs))
        columns += [e.meta.output_name() for e in exprs]
        nullable += null
    searches = lf.filter(is_type("search_query")).with_columns(qhash=pl.col("tokens").hash())
    for key, rows, name in (("url", lf.filter(is_type("page_visit")), "urls"), ("qhash", searches, "queries")):
        table = distinct_table(rows, key, name, windows)
        tables.append(table)
        columns += table.collect_schema().names()[1:]
    nullable.append("url_revisit_share")
    return tables, columns, nullable


def distinct_table(rows: pl.LazyFrame, key: str, name: str, windows: tuple[int | None, ...]) -> pl.LazyFrame:
    """Distinct `key` values per window (`distinct_<name>_<window>`) from one (user, value) step;
    for URLs also the revisit share (visits beyond the first of each URL, over all visits).

    A value is in a window when its latest event is: counting those beats a distinct count per window."""
    per_value = rows.group_by("client_id", key).agg(pl.col("age").min(), n=pl.len())
    exprs = [
        (pl.len() if w is None else (pl.col("age") <= w).sum()).cast(pl.Float64).alias(f"distinct_{name}_{f'{w}d' if w else 'all'}")
        for w in windows
    ]
    if name == "urls":
        exprs.append(_safe_ratio(pl.col("n").sum() - pl.len(), pl.col("n").sum()).cast(pl.Float64).alias("url_revisit_share"))
    return per_value.group_by("client_id").agg(exprs)
