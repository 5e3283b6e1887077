"""Session features (docs/methods.md §D): a session ends after 30 minutes without an event.

A gap of exactly 30 minutes starts a new session. Per user: session count, duration mean and
variance, events per session, gaps between sessions, part-of-day shares of session starts,
the burst ratio, conversion within sessions and the early-vs-late event mix inside sessions.
"""

from __future__ import annotations

from datetime import timedelta

import polars as pl

from ubp.encoders.features.windows import IS_ITEM, _safe_ratio, is_type

SESSION_GAP = timedelta(minutes=30)
BURST_GAP_SECONDS = 60.0
PARTS_OF_DAY = {"night": (0, 6), "morning": (6, 12), "afternoon": (12, 18), "evening": (18, 24)}


def with_sessions(lf: pl.LazyFrame) -> pl.LazyFrame:
    """Adds `sid` (a session key, unique within the frame), `pos` and `slen` (place in / length of the session).

    Expects the stream sorted by client then time (as every shard is) and `gap_s` (seconds since
    the user's previous event, null for the first): plain column arithmetic, no per-user windows."""
    new = pl.col("gap_s").is_null() | (pl.col("gap_s") >= SESSION_GAP.total_seconds())
    idx = pl.int_range(pl.len(), dtype=pl.Int64)
    lf = lf.with_columns(sid=new.cum_sum(), start=pl.when(new).then(idx).forward_fill())
    return lf.with_columns(pos=idx - pl.col("start"), slen=pl.len().over("sid")).drop("start")


def session_table(lf: pl.LazyFrame) -> tuple[pl.LazyFrame, list[str]]:
    """Per-user session features of a stream that went through `with_sessions`, and the nullable names."""
    sessions = lf.group_by("client_id", "sid").agg(
        start=pl.col("timestamp").min(),
        end=pl.col("timestamp").max(),
        n=pl.len(),
        has_buy=is_type("product_buy").any(),
        has_cart=is_type("add_to_cart").any(),
        has_search=is_type("search_query").any(),
    )
    sessions = sessions.sort("client_id", "sid").with_columns(
        minutes=(pl.col("end") - pl.col("start")).dt.total_seconds() / 60.0,
        gap_hours=(pl.col("start") - pl.col("end").shift(1).over("client_id")).dt.total_seconds() / 3600.0,
        start_hour=pl.col("start").dt.hour(),
    )
    n_sess = pl.len()
    per_user = [
        n_sess.cast(pl.Float64).alias("sessions"),
        pl.col("minutes").mean().alias("session_minutes_mean"),
        pl.col("minutes").var(ddof=0).alias("session_minutes_var"),
        pl.col("n").mean().alias("session_events_mean"),
        pl.col("gap_hours").mean().alias("session_gap_hours_mean"),
        pl.col("gap_hours").std().alias("session_gap_hours_std"),
        _safe_ratio(
            (pl.col("has_search") & pl.col("has_buy")).sum(), pl.col("has_search").sum()
        ).alias("search_to_buy_session_rate"),
        _safe_ratio((pl.col("has_cart") & pl.col("has_buy")).sum(), pl.col("has_cart").sum()).alias(
            "cart_to_buy_session_rate"
        ),
    ]
    per_user += [
        pl.col("start_hour").is_between(lo, hi, closed="left").mean().alias(f"session_share_{part}")
        for part, (lo, hi) in PARTS_OF_DAY.items()
    ]
    nullable = [
        "session_gap_hours_mean", "session_gap_hours_std", "search_to_buy_session_rate", "cart_to_buy_session_rate",
    ]
    users = sessions.group_by("client_id").agg(per_user)

    multi = pl.col("slen") >= 2
    early = multi & (pl.col("pos") < pl.col("slen") / 2)
    late = multi & (pl.col("pos") >= pl.col("slen") / 2)
    is_item = IS_ITEM
    mix = lf.group_by("client_id").agg(
        (pl.col("gap_s") < BURST_GAP_SECONDS).mean().alias("burst_ratio"),
        is_item.filter(early).mean().alias("early_item_share"),
        is_item.filter(late).mean().alias("late_item_share"),
        is_type("search_query").filter(early).mean().alias("early_search_share"),
        is_type("search_query").filter(late).mean().alias("late_search_share"),
    )
    nullable += ["burst_ratio", "early_item_share", "late_item_share", "early_search_share", "late_search_share"]
    return users.join(mix, on="client_id", how="left"), nullable
