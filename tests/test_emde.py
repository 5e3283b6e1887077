"""The `emde` block: Cleora item vectors, data-adaptive hash, decayed sketches, compression."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import scipy.sparse as sp

from ubp.config import ConfigError
from ubp.data.window import InputWindow, write_window
from ubp.encoders import create
from ubp.encoders.base import Run
from ubp.encoders.emde.cleora import ShardGraph, propagate, start_vectors
from ubp.encoders.emde.encoder import EmdeEncoder
from ubp.encoders.emde.items import ItemVocab
from ubp.encoders.emde.lsh import BucketHash
from ubp.encoders.emde.sketch import decayed_sketch, sketch_width
from ubp.layout import PRODUCTS_SCHEMA, STREAM_SCHEMA

CUTOFF = datetime(2024, 3, 1)
SMALL = dict(dim=16, iterations=2, n_partitions=3, n_buckets=8, half_lives_days=(7.0, 60.0), out_dim=8)
BUY, ADD, REMOVE, VISIT, SEARCH = range(5)


def events_frame(rows: list[tuple[int, float, int, int | None, int | None]]) -> pl.LazyFrame:
    """(client_id, age in days before CUTOFF, event_type, sku, url) rows in STREAM_SCHEMA."""
    cols = list(zip(*rows)) if rows else [[]] * 5
    return pl.LazyFrame(
        {
            "client_id": pl.Series(cols[0], dtype=pl.Int64),
            "timestamp": pl.Series([CUTOFF - timedelta(days=a) for a in cols[1]], dtype=pl.Datetime("us")),
            "event_type": pl.Series(cols[2], dtype=pl.UInt8),
            "sku": pl.Series(cols[3], dtype=pl.Int64),
            "category": pl.Series([None] * len(cols[0]), dtype=pl.Int64),
            "price": pl.Series([None] * len(cols[0]), dtype=pl.Int16),
            "url": pl.Series(cols[4], dtype=pl.Int64),
            "tokens": pl.Series([None] * len(cols[0]), dtype=STREAM_SCHEMA["tokens"]),
        }
    )


def window_of(tmp: Path, rows: list, events_per_shard: int = 4_000_000) -> InputWindow:
    products = pl.DataFrame(schema=PRODUCTS_SCHEMA)
    return write_window(events_frame(rows), products, CUTOFF, tmp / "input", events_per_shard=events_per_shard)


def random_rows(n_users: int, n_events: int, seed: int, id_offset: int = 0) -> list:
    """Users with a taste for one of two item communities, ids far apart and negative too."""
    rng = np.random.default_rng(seed)
    users = rng.integers(0, n_users, n_events)
    kinds = rng.choice([BUY, ADD, REMOVE, VISIT, SEARCH], n_events, p=[0.1, 0.2, 0.1, 0.5, 0.1])
    item = (users % 2) * 20 + rng.integers(0, 20, n_events)
    rows = []
    for u, k, i, a in zip(users, kinds, item, rng.uniform(0, 90, n_events)):
        sku = int(i) * 1_000_003 - 7 if k in (BUY, ADD, REMOVE) else None
        url = -int(i) if k == VISIT else None
        rows.append((int(u) * 10**12 + id_offset, float(a), int(k), sku, url))
    return rows


@pytest.fixture(scope="module")
def fitted(tmp_path_factory: pytest.TempPathFactory) -> tuple[EmdeEncoder, InputWindow]:
    window = window_of(tmp_path_factory.mktemp("emde_fit"), random_rows(60, 1500, seed=1), events_per_shard=500)
    assert len(window.shards) == 3
    return create("emde", **SMALL).fit(window, Run(seed=3, show_progress=False)), window


def test_registered() -> None:
    assert isinstance(create("emde", out_dim=4), EmdeEncoder)


def test_hash_is_deterministic_and_spreads_items() -> None:
    rng = np.random.default_rng(0)
    # anisotropic, off-centre items: hyperplanes through the origin would put most in one bucket
    vectors = (rng.standard_normal((4000, 16)) * np.linspace(0.1, 3, 16) + 5.0).astype(np.float32)
    codes = BucketHash.fit(vectors, n_partitions=4, n_buckets=16, seed=7).codes(vectors)
    assert codes.shape == (4000, 4) and codes.max() < 16
    np.testing.assert_array_equal(codes, BucketHash.fit(vectors, 4, 16, seed=7).codes(vectors))
    assert (codes != BucketHash.fit(vectors, 4, 16, seed=8).codes(vectors)).any()
    for p in range(4):
        share = np.bincount(codes[:, p], minlength=16) / len(codes)
        assert share.max() < 0.2 and (share > 0).sum() >= 12
    assert (codes[:, 0] != codes[:, 1]).mean() > 0.5  # partitions are independent


def test_hash_rejects_bad_bucket_counts() -> None:
    with pytest.raises(ValueError, match="power of two"):
        BucketHash.fit(np.zeros((3, 8), np.float32), 2, 12, seed=0)
    with pytest.raises(ValueError, match="bits"):
        BucketHash.fit(np.zeros((3, 2), np.float32), 2, 8, seed=0)


def test_propagation_averages_neighbours() -> None:
    # user 0 holds items 0 and 1, user 1 holds items 2 and 3 (twice item 3): one step gives each
    # item the normalised mean of its user's items, weighted by event counts
    shards = [
        ShardGraph(sp.csr_matrix(np.array([[1, 1]], np.float32)), np.array([0, 1])),
        ShardGraph(sp.csr_matrix(np.array([[1, 2]], np.float32)), np.array([2, 3])),
    ]
    x = propagate(shards, np.eye(4, dtype=np.float32), iterations=1)
    np.testing.assert_allclose(x[0], [2**-0.5, 2**-0.5, 0, 0], atol=1e-6)
    np.testing.assert_allclose(x[1], x[0])
    np.testing.assert_allclose(x[2], [0, 0, 5**-0.5, 2 * 5**-0.5], atol=1e-6)
    np.testing.assert_allclose(x[3], x[2])
    # item 1 is shared by users of two shards: its sum runs over both
    shards = [
        ShardGraph(sp.csr_matrix(np.array([[1, 1]], np.float32)), np.array([0, 1])),
        ShardGraph(sp.csr_matrix(np.array([[1, 1]], np.float32)), np.array([1, 2])),
    ]
    x = propagate(shards, np.eye(3, dtype=np.float32), iterations=1)
    expected = [[2**-0.5, 2**-0.5, 0], [6**-0.5, 2 * 6**-0.5, 6**-0.5], [0, 2**-0.5, 2**-0.5]]
    np.testing.assert_allclose(x, expected, atol=1e-6)


def test_start_vectors_depend_on_id_kind_and_seed_only() -> None:
    a = start_vectors(ItemVocab(np.array([5, 9]), np.array([5])), dim=8, seed=1)
    b = start_vectors(ItemVocab(np.array([2, 5]), np.array([], np.int64)), dim=8, seed=1)
    np.testing.assert_array_equal(a[0], b[1])  # SKU 5 starts the same whatever else is there
    assert not np.allclose(a[0], a[2])  # SKU 5 and URL 5 are different items
    assert not np.allclose(a, start_vectors(ItemVocab(np.array([5, 9]), np.array([5])), dim=8, seed=2))
    assert np.abs(a).max() <= 1


def test_sketch_matches_hand_computed_decays(tmp_path: Path) -> None:
    rows = [
        (7, 7.0, BUY, 10, None),  # SKU 10, a week old
        (7, 1.0, BUY, 10, None),
        (7, 14.0, VISIT, None, 10),  # URL 10: not the same item as SKU 10
        (7, 2.0, SEARCH, None, None),  # searches are not sketched
        (7, 1.0, ADD, 99, None),  # SKU 99 is not in the vocabulary
        (-3, 3.0, REMOVE, 20, None),
        (5, 1.0, ADD, 99, None),  # only unseen items: no sketch row
    ]
    window = window_of(tmp_path, rows)
    vocab = ItemVocab(np.array([10, 20]), np.array([10]))
    codes = np.array([[1, 3], [1, 0], [2, 2]], np.uint16)  # items SKU 10, SKU 20, URL 10; 2 partitions
    half_lives = (7.0, 14.0)
    users, sketch = decayed_sketch(window.stream(), vocab, codes, window.cutoff, half_lives, n_buckets=4)
    np.testing.assert_array_equal(users, [-3, 7])
    assert sketch.shape == (2, sketch_width(2, 2, 4)) == (2, 4 * 2 * 2 * 4)

    def col(group: int, h: int, p: int, b: int) -> int:
        return ((group * 2 + h) * 2 + p) * 4 + b

    expected = np.zeros(sketch.shape)
    buy_7 = 0.5 + 2 ** (-1 / 7)
    buy_14 = 2 ** (-7 / 14) + 2 ** (-1 / 14)
    for p, b in enumerate([1, 3]):
        expected[1, col(BUY, 0, p, b)] = buy_7
        expected[1, col(BUY, 1, p, b)] = buy_14
    for p in range(2):
        expected[1, col(VISIT, 0, p, 2)] = 0.25
        expected[1, col(VISIT, 1, p, 2)] = 0.5
    for p, b in enumerate([1, 0]):
        expected[0, col(REMOVE, 0, p, b)] = 2 ** (-3 / 7)
        expected[0, col(REMOVE, 1, p, b)] = 2 ** (-3 / 14)
    np.testing.assert_allclose(sketch.toarray(), expected, rtol=1e-6)


def test_transform_shape_order_and_determinism(fitted, tmp_path: Path) -> None:
    encoder, window = fitted
    ids = np.array([3 * 10**12, 0, 3 * 10**12, 123456789], np.int64)  # a duplicate and an unknown client
    out = encoder.transform(window, ids)
    assert out.shape == (4, 8) and out.dtype == np.float32 and np.isfinite(out).all()
    np.testing.assert_array_equal(out[0], out[2])
    np.testing.assert_array_equal(out[1], encoder.transform(window, ids[1:2])[0])
    again = create("emde", **SMALL).fit(window, Run(seed=3, show_progress=False))
    np.testing.assert_array_equal(again.transform(window, ids), out)
    users = np.unique(window.stream().select("client_id").collect()["client_id"].to_numpy())
    full = encoder.transform(window, users)
    np.testing.assert_allclose(full.std(axis=0), 1.0, atol=0.05)  # standardized (all users have item events)


def test_unseen_user_gets_a_sketch_without_retraining(fitted, tmp_path: Path) -> None:
    encoder, _ = fitted
    known_skus = [i * 1_000_003 - 7 for i in range(3)]
    rows = [(424242, 2.0, BUY, s, None) for s in known_skus] + [(-1, 2.0, ADD, 555, None)]
    new_window = window_of(tmp_path, rows)
    out = encoder.transform(new_window, np.array([424242, -1, 777], np.int64))
    assert np.isfinite(out).all()
    np.testing.assert_array_equal(out[1], out[2])  # only unseen items = no events at all
    assert not np.allclose(out[0], out[2])


def test_save_load_round_trip(fitted, tmp_path: Path) -> None:
    encoder, window = fitted
    encoder.save(tmp_path / "emde")
    assert sorted(p.name for p in (tmp_path / "emde").iterdir()) == ["emde.json", "emde.npz"]
    loaded = EmdeEncoder.load(tmp_path / "emde")
    ids = np.array([0, 10**12, 5 * 10**12, 99], np.int64)
    np.testing.assert_array_equal(loaded.transform(window, ids), encoder.transform(window, ids))
    assert loaded.half_lives_days == encoder.half_lives_days


@pytest.mark.parametrize("kinds", [(BUY,), (VISIT,), ()])
def test_zero_row_event_types(kinds: tuple[int, ...], tmp_path: Path) -> None:
    rows = [r for r in random_rows(20, 300, seed=2) if r[2] in kinds or r[2] == SEARCH]
    window = window_of(tmp_path, rows)
    encoder = create("emde", **SMALL).fit(window, Run(seed=0, show_progress=False))
    ids = np.array([0, 10**12, 2 * 10**12, -5], np.int64)
    out = encoder.transform(window, ids)
    assert out.shape == (4, 8) and np.isfinite(out).all()


def test_bad_options_are_errors() -> None:
    with pytest.raises(ConfigError, match="out_dim"):
        create("emde", out_dim=512)
    with pytest.raises(ConfigError, match="half_lives"):
        create("emde", half_lives_days=(7.0, 0.0))
