"""The reference blocks (random, oracle, baseline, counts) on a hand-written event log."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from handmade_window import handmade_window
from ubp.errors import InputError
from ubp.encoders.base import Run
from ubp.encoders.registry import create

IDS = np.array([1, 2, 3, 4, 99], dtype=np.int64)  # 4: relevant without events; 99: unknown


@pytest.fixture(scope="module")
def window(tmp_path_factory):
    return handmade_window(tmp_path_factory.mktemp("ref"))


def _roundtrip(enc, window, tmp_path):
    enc.save(tmp_path / "block")
    again = type(enc).load(tmp_path / "block")
    np.testing.assert_array_equal(enc.transform(window, IDS), again.transform(window, IDS))


def test_random_rows_depend_only_on_seed_and_id(window, tmp_path):
    enc = create("random", dim=16).fit(window, Run(seed=3))
    x = enc.transform(window, IDS)
    assert x.shape == (5, 16) and x.dtype == np.float32
    np.testing.assert_array_equal(enc.transform(window, IDS[::-1])[::-1], x)
    np.testing.assert_array_equal(enc.transform(window, IDS[:2]), x[:2])
    assert not np.allclose(create("random", dim=16).fit(window, Run(seed=4)).transform(window, IDS), x)
    big = create("random", dim=64).fit(window, Run(seed=0)).transform(window, np.arange(5000))
    assert abs(big.mean()) < 0.02 and abs(big.std() - 1.0) < 0.02
    _roundtrip(enc, window, tmp_path)


def test_oracle_reads_the_world_state(window, tmp_path):
    root = window.data_dir
    with pytest.raises(InputError, match="oracle"):
        create("oracle").fit(window, Run())
    (root / "oracle").mkdir()
    try:
        np.save(root / "oracle" / "client_ids.npy", np.array([2, 1], dtype=np.int64))
        np.save(root / "oracle" / "embeddings.npy", np.array([[2.0, 2.5], [1.0, 1.5]], dtype=np.float32))
        enc = create("oracle").fit(window, Run())
        x = enc.transform(window, IDS)
        np.testing.assert_array_equal(x, [[1.0, 1.5], [2.0, 2.5], [0, 0], [0, 0], [0, 0]])
        _roundtrip(enc, window, tmp_path)
    finally:
        for f in (root / "oracle").iterdir():
            f.unlink()
        (root / "oracle").rmdir()


def test_baseline_reproduces_the_organisers_counts(window, tmp_path):
    enc = create("baseline").fit(window, Run())
    x = enc.transform(window, IDS)
    assert x.shape == (5, 320)
    col = {name: i for i, name in enumerate(enc.columns_)}
    u1, u2, u3 = x[0], x[1], x[2]
    assert u1[col["product_buy_count"]] == 3
    # windows end at each type's latest relevant event: buys 2024-02-25 18:07, so 1 day holds both 02-25 buys
    assert u1[col["product_buy_1d_sku_top0"]] == 1 and u1[col["product_buy_1d_sku_top1"]] == 1
    assert u1[col["product_buy_1d_category_top0"]] == 2  # category 10, the most bought
    assert u1[col["product_buy_30d_category_top1"]] == 1  # category 20, bought on 02-02
    # client 5 is not relevant: its later cart does not move the cart windows' end (02-25 18:05)
    assert u1[col["add_to_cart_1d_sku_top1"]] == 1
    assert u2[col["add_to_cart_7d_sku_top3"]] == 1 and u2[col["add_to_cart_count"]] == 1
    assert u1[col["page_visit_count"]] == 2 and u3[col["page_visit_30d_url_top2"]] == 1
    assert np.all(u1[[col[f"search_query_query_mean_{j}"] for j in range(16)]] == 7)
    # an absent type (remove_from_cart) gives zeros; no events or unknown id give zero rows
    assert not x[:, [i for n, i in col.items() if n.startswith("remove_from_cart")]].any()
    assert not x[3:].any()
    _roundtrip(enc, window, tmp_path)


def test_counts_profile_and_recency(window, tmp_path):
    enc = create("counts").fit(window, Run())
    raw = enc.raw(window, IDS)
    col = {name: i for i, name in enumerate(enc.columns_)}
    u1 = raw[0]
    assert u1[col["buy_cat_10"]] == pytest.approx(math.log1p(2))
    assert u1[col["buy_sku_3"]] == pytest.approx(math.log1p(1))
    assert u1[col["cart_price_5"]] == pytest.approx(math.log1p(1))
    assert u1[col["n_cart_7d"]] == pytest.approx(math.log1p(2))  # the cart exactly 7 days back counts
    assert u1[col["days_since_visit"]] == pytest.approx(1 / 24)
    assert np.isnan(raw[3, col["days_since_buy"]]) and raw[3, col["n_buy_all"]] == 0
    x = enc.transform(window, IDS)
    assert x.dtype == np.float32 and np.isfinite(x).all() and np.abs(x).max() <= enc.clip
    np.testing.assert_array_equal(x[3], x[4])  # no events = unknown client: one well-defined row
    _roundtrip(enc, window, tmp_path)


@pytest.mark.parametrize("name", ["random", "baseline", "counts", "features"])
def test_same_seed_same_output_and_row_order(window, name):
    a = create(name).fit(window, Run(seed=7)).transform(window, IDS)
    b = create(name).fit(window, Run(seed=7)).transform(window, IDS[::-1])
    np.testing.assert_array_equal(a, b[::-1])
