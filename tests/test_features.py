"""The `features` block against values computed by hand on the hand-written event log."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from handmade_window import handmade_window
from ubp.encoders.base import Run
from ubp.encoders.features import FeaturesEncoder

IDS = np.array([1, 2, 3, 4], dtype=np.int64)


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    window = handmade_window(tmp_path_factory.mktemp("feat"))
    enc = FeaturesEncoder(n_clusters=3).fit(window, Run(seed=1))
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
