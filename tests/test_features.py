"""The `features` block against values computed by hand on the hand-written event log."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from handmade_window import handmade_window
from ubp.encoders import create
from ubp.encoders.base import Run
from ubp.encoders.features import FeaturesEncoder

IDS = np.array([1, 2, 3, 4], dtype=np.int64)


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    window = handmade_window(tmp_path_factory.mktemp("feat"))
    enc = create("features", n_clusters=3).fit(window, Run(seed=1))
    table = enc.raw_table(window, IDS)
    return window, enc, {cid: row for cid, row in zip(IDS, table.iter_rows(named=True))}


def test_windows_include_their_edges(fitted):
    _, _, rows = fitted
    u1 = rows[1]
    assert u1["n_cart_7d"] == 2  # 02-23 00:00 is exactly 7 days before the cutoff
    assert u1["n_cart_14d"] == 2 and u1["n_cart_28d"] == 3  # 02-02 00:00: exactly 28 days
    assert u1["n_buy_28d"] == 3 and u1["n_buy_7d"] == 2
    assert u1["days_since_first_7d"] == pytest.approx(7.0)
    assert u1["days_since_first_all"] == pytest.approx(50.5)
    assert u1["n_events_all"] == 9 and u1["active_days_all"] == 5
    assert u1["events_per_active_day_all"] == pytest.approx(9 / 5)


def test_prices_ratios_and_diversity(fitted):
    _, _, rows = fitted
    u1 = rows[1]
    assert u1["price_mean_buy_all"] == pytest.approx(70 / 3)
    assert (u1["price_min_buy_all"], u1["price_max_buy_all"]) == (5, 50)
    assert u1["buy_per_cart_all"] == 1.0 and u1["buy_share_of_items_all"] == 0.5
    p = np.array([4, 2]) / 6  # item events: four in category 10, two in 20
    assert u1["category_entropy"] == pytest.approx(-(p * np.log(p)).sum())
    assert u1["category_gini"] == pytest.approx(4 / 9)
    assert u1["cart_abandonment"] == 0.0 and rows[2]["cart_abandonment"] == 1.0
    assert u1["distinct_skus_all"] == 3 and u1["distinct_queries_all"] == 1
    assert u1["search_to_buy_session_rate"] == 1.0  # the 02-25 session: search, cart, buy, buy
    assert u1["buy_interval_days_min"] == pytest.approx(1 / 1440)


def test_sessions_split_at_exactly_30_minutes(fitted):
    _, _, rows = fitted
    u2 = rows[2]
    assert u2["sessions"] == 2  # 29:59 apart stays, 30:00 apart splits
    assert u2["session_minutes_mean"] == pytest.approx((29 + 59 / 60) / 2)
    assert u2["session_gap_hours_mean"] == pytest.approx(0.5)
    assert u2["session_share_morning"] == 1.0 and u2["is_cart_abandoner"] == 1.0


def test_single_event_user_and_user_without_events(fitted):
    _, _, rows = fitted
    u3, u4 = rows[3], rows[4]
    assert u3["sessions"] == 1 and u3["n_visit_all"] == 1 and u3["is_one_timer"] == 1
    assert u3["days_since_first_all"] == pytest.approx(19 + 16 / 24)
    assert u3["gap_hours_mean_all"] is None and u3["burst_ratio"] is None
    assert u3["is_browser_only"] == 1
    assert u4["n_events_all"] == 0 and u4["sessions"] == 0 and u4["buy_cat_10"] == 0
    assert u4["days_since_visit_all"] is None and u4["price_mean_buy_all"] is None


def test_absent_event_type_gives_zeros(fitted):
    window, enc, rows = fitted
    assert "remove_from_cart" in window.absent_event_types
    assert all(rows[c]["n_remove_all"] == 0 for c in IDS)
    x = enc.transform(window, IDS)
    removes = [i for i, c in enumerate(enc.columns_) if c.startswith(("n_remove", "price_mean_remove", "remove_"))]
    assert removes and not x[:, removes].any()


def test_cluster_and_profile_counts(fitted):
    _, enc, rows = fitted
    u1 = rows[1]
    assert u1["buy_cat_10"] == pytest.approx(math.log1p(2))
    assert u1["cart_price_50"] == pytest.approx(math.log1p(1))
    # decayed counts: one cart of price 95 (group 9) 9.54 days before the cutoff, half-life 7 days
    assert rows[2]["cart_pricegrp9_hl7d"] == pytest.approx(math.log1p(0.5 ** ((9 + 13 / 24 + 1 / 86400) / 7)), rel=1e-4)
    buys = [c for c in enc.columns_ if c.startswith("buy_namecl") and c.endswith("hl60d")]
    assert sum(math.expm1(u1[c]) > 0 for c in buys) == u1["buy_cluster_touched"]


def test_transform_is_standardized_and_round_trips(fitted, tmp_path):
    window, enc, _ = fitted
    x = enc.transform(window, IDS)
    assert x.dtype == np.float32 and x.shape == (4, len(enc.columns_))
    assert np.isfinite(x).all() and np.abs(x).max() <= enc.clip
    enc.save(tmp_path / "features")
    np.testing.assert_array_equal(FeaturesEncoder.load(tmp_path / "features").transform(window, IDS), x)
    enc.write_raw_table(window, IDS, tmp_path / "raw.parquet")
    table = pl.read_parquet(tmp_path / "raw.parquet")
    assert table.columns == ["client_id", *enc.columns_] and table["client_id"].to_list() == IDS.tolist()


def test_window_gaps_distinct_counts_and_peak_hour(fitted):
    """Pins the values of the one-pass rewrites (previous-event gaps, per-(user, value) distinct counts)."""
    _, _, rows = fitted
    u1 = rows[1]
    # inside 7 days: 02-23 00:00, 02-25 18:00/05/06/07, 02-29 23:00; the gap from 02-02 00:10 stays out
    gaps_7d = [66.0, 5 / 60, 1 / 60, 1 / 60, 4 * 24 + 4 + 53 / 60]
    assert u1["gap_hours_max_7d"] == pytest.approx(max(gaps_7d))
    assert u1["gap_hours_mean_7d"] == pytest.approx(np.mean(gaps_7d))
    assert u1["gap_hours_max_28d"] == pytest.approx(20 * 24 + 23 + 50 / 60)  # 02-02 00:10 -> 02-23 00:00
    assert (u1["distinct_urls_7d"], u1["distinct_urls_all"], u1["url_revisit_share"]) == (1, 2, 0.0)
    assert (u1["distinct_queries_7d"], rows[2]["distinct_queries_all"]) == (1, 0)
    assert rows[4]["url_revisit_share"] is None and rows[3]["distinct_urls_all"] == 1
    assert u1["peak_hour_sin"] == pytest.approx(-1.0) and u1["peak_hour_cos"] == pytest.approx(0.0, abs=1e-12)  # 18:00
    assert u1["burst_ratio"] == 0.0  # the closest events are exactly 60 s apart: not a burst


def test_cached_rows_match_a_fresh_computation(fitted, tmp_path):
    """`fit` keeps the fit clients' raw rows for `transform`; rows it lacks (99) are computed."""
    window, enc, _ = fitted
    ids = np.array([99, 2, 1, 2], dtype=np.int64)
    assert enc.cache_ is not None and enc.cache_.window is window
    enc.save(tmp_path / "f")
    fresh = FeaturesEncoder.load(tmp_path / "f")
    assert fresh.cache_ is None
    np.testing.assert_array_equal(enc.raw(window, ids), fresh.raw(window, ids))
    np.testing.assert_array_equal(enc.transform(window, ids), fresh.transform(window, ids))


def test_heavy_tailed_columns_are_log_scaled_before_standardizing(fitted):
    window, enc, rows = fitted
    j = enc.columns_.index("n_events_all")
    logs = np.log1p([rows[c]["n_events_all"] for c in IDS])  # 9, 3, 1, 0 events
    assert enc.scaler_.mean[j] == pytest.approx(logs.mean()) and enc.scaler_.std[j] == pytest.approx(logs.std())
    np.testing.assert_allclose(enc.transform(window, IDS)[:, j], (logs - logs.mean()) / logs.std(), rtol=1e-5)
    k = enc.columns_.index("hour_sin")  # bounded: standardized as it is
    assert enc.scaler_.mean[k] == pytest.approx(np.nanmean([rows[c]["hour_sin"] for c in IDS[:3]] + [0.0]))


def test_no_cache_above_the_memory_budget(fitted, monkeypatch):
    """Past `RAW_CACHE_BYTES` fit keeps no raw rows; the fitted statistics and outputs are the same."""
    import ubp.encoders.raw_cache as raw_cache

    window, enc, _ = fitted
    monkeypatch.setattr(raw_cache, "RAW_CACHE_BYTES", 0)
    lean = create("features", n_clusters=3).fit(window, Run(seed=1))
    assert lean.cache_ is None
    np.testing.assert_allclose(lean.scaler_.mean, enc.scaler_.mean, rtol=1e-6)
    np.testing.assert_allclose(lean.scaler_.std, enc.scaler_.std, rtol=1e-6)
    np.testing.assert_allclose(lean.transform(window, IDS), enc.transform(window, IDS), atol=1e-5)


def test_transform_of_every_fit_client_takes_over_the_cache(tmp_path):
    """The usual embed (every fit client once, any order) reuses the cached matrix as its output,
    bit for bit what a fresh computation gives, and leaves an empty cache behind."""
    window = handmade_window(tmp_path / "w")
    enc = create("features", n_clusters=3).fit(window, Run(seed=1))
    enc.save(tmp_path / "f")
    fresh = FeaturesEncoder.load(tmp_path / "f")
    ids = IDS[[2, 0, 3, 1]]
    kept = enc.cache_.matrix
    out = enc.transform(window, ids)
    assert np.shares_memory(out, kept) and len(enc.cache_.ids) == 0
    np.testing.assert_array_equal(out, fresh.transform(window, ids))
    np.testing.assert_array_equal(enc.transform(window, ids), out)  # recomputed once the cache is gone
