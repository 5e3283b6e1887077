"""The synthetic world generator: layout, formats, determinism, realism figures and the oracle."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest

from ubp.layout import EVENT_TYPES, EVENT_VALUE_COLUMN, ITEM_EVENTS, PROPERTIES_FILE
from ubp.synth import oracle as synth_oracle
from ubp.synth import params as synth_params
from ubp.synth import world as synth_world
from ubp.synth.catalogue import build_catalogue, complement_categories
from ubp.synth.ids import scatter_ids
from ubp.synth.oracle import BLOCKS
from ubp.synth.sampling import GroupedSampler, draw_rows, quantize
from ubp.synth.world import generate

VECTOR = r"^\[( (\d|[1-9]\d|1\d\d|2[0-4]\d|25[0-5])){16} \]$"
TIMESTAMP = r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("synth") / "tiny"
    generate(root, n_users=None, scale="tiny", seed=1, show_progress=False)
    return root


@pytest.fixture(scope="module")
def events(world: Path) -> dict[str, pl.DataFrame]:
    return {
        e: pl.read_parquet(world / f"{e}.parquet").with_columns(ts=pl.col("timestamp").str.to_datetime())
        for e in EVENT_TYPES
    }


@pytest.fixture(scope="module")
def cutoff(world: Path, events: dict[str, pl.DataFrame]) -> dt.datetime:
    """The split's rule: (last buy − 27 days) at 00:00."""
    last = events["product_buy"]["ts"].max()
    return dt.datetime.combine((last - dt.timedelta(days=27)).date(), dt.time())


def test_layout_and_dtypes(world: Path) -> None:
    for e in EVENT_TYPES:
        schema = pq.read_schema(world / f"{e}.parquet")
        assert schema.names == ["client_id", "timestamp", EVENT_VALUE_COLUMN[e]]
        assert str(schema.field("client_id").type) == "int64"
        assert str(schema.field("timestamp").type) == "string"
        assert str(schema.field(EVENT_VALUE_COLUMN[e]).type) == ("string" if e == "search_query" else "int64")
    props = pq.read_schema(world / PROPERTIES_FILE)
    assert [(f.name, str(f.type)) for f in props] == [
        ("sku", "int64"), ("category", "int64"), ("price", "int64"), ("name", "string")
    ]
    assert np.load(world / "input" / "relevant_clients.npy").dtype == np.int64
    assert np.load(world / "oracle" / "client_ids.npy").dtype == np.int64
    assert np.load(world / "oracle" / "embeddings.npy").dtype == np.float16
    assert not (world / "target").exists()  # `ubp split` derives the targets
    info = json.loads((world / "world.json").read_text())
    assert info["seed"] == 1 and info["n_users"] == 2_500
    assert not list(world.parent.glob(".tiny.*"))  # no leftover partial directory


def test_string_formats(world: Path, events: dict[str, pl.DataFrame]) -> None:
    props = pl.read_parquet(world / PROPERTIES_FILE)
    assert props["name"].str.contains(VECTOR).all()
    assert events["search_query"]["query"].str.contains(VECTOR).all()
    for e in EVENT_TYPES:
        assert events[e]["timestamp"].str.contains(TIMESTAMP).all()
    assert props["price"].min() >= 0 and props["price"].max() <= 99
    assert props["price"].n_unique() == 100  # quantile buckets


def test_items_exist_in_catalogue(world: Path, events: dict[str, pl.DataFrame]) -> None:
    props = pl.read_parquet(world / PROPERTIES_FILE)
    assert props["sku"].is_unique().all()
    for e in ITEM_EVENTS:
        assert events[e]["sku"].is_in(props["sku"].implode()).all()


def test_ids_are_scattered_and_distinct(world: Path, events: dict[str, pl.DataFrame]) -> None:
    props = pl.read_parquet(world / PROPERTIES_FILE)
    clients = pl.concat([events[e].select("client_id") for e in EVENT_TYPES])["client_id"].unique()
    for ids in (clients, props["sku"], events["page_visit"]["url"].unique()):
        assert ids.max() - ids.min() > 1000 * len(ids)  # far from a contiguous 0..n range
    rel = np.load(world / "input" / "relevant_clients.npy")
    assert len(np.unique(rel)) == len(rel)


def test_event_mix_near_the_real_data(events: dict[str, pl.DataFrame]) -> None:
    n = {e: len(f) for e, f in events.items()}
    share = {e: v / sum(n.values()) for e, v in n.items()}
    real = {"page_visit": 0.89, "search_query": 0.057, "add_to_cart": 0.031, "remove_from_cart": 0.010,
            "product_buy": 0.010}
    for e, target in real.items():
        assert abs(share[e] - target) < 0.35 * target, (e, share[e])


def test_buys_follow_their_cart_addition(events: dict[str, pl.DataFrame]) -> None:
    buys = events["product_buy"].select("client_id", "sku", buy="ts")
    adds = events["add_to_cart"].group_by("client_id", "sku").agg(first_add=pl.col("ts").min())
    joined = buys.join(adds, on=["client_id", "sku"], how="left")
    assert joined["first_add"].null_count() == 0
    assert (joined["first_add"] < joined["buy"]).all()


def test_relevant_clients_have_history_and_half_buy(
    world: Path, events: dict[str, pl.DataFrame], cutoff: dt.datetime
) -> None:
    rel = pl.Series(np.load(world / "input" / "relevant_clients.npy"))
    assert 1_500 <= len(rel) <= 2_500
    seen = pl.concat([f.filter(pl.col("ts") < cutoff).select("client_id") for f in events.values()])["client_id"]
    assert rel.is_in(seen.implode()).all()
    buyers = events["product_buy"].filter(pl.col("ts") < cutoff)["client_id"].unique()
    share = rel.is_in(buyers.implode()).mean()
    assert 0.3 < share < 0.7, share


def test_history_and_target_span(events: dict[str, pl.DataFrame], cutoff: dt.datetime) -> None:
    first = min(f["ts"].min() for f in events.values())
    assert (cutoff - first).days >= 145
    assert (events["product_buy"]["ts"].max() - cutoff).days == 27


def test_new_skus_are_bought_after_the_cutoff(events: dict[str, pl.DataFrame], cutoff: dt.datetime) -> None:
    seen = pl.concat([events[e].filter(pl.col("ts") < cutoff).select("sku") for e in ITEM_EVENTS])["sku"]
    target = events["product_buy"].filter(pl.col("ts") >= cutoff)
    new = target.filter(~pl.col("sku").is_in(seen.implode()))
    assert new["sku"].n_unique() >= 10


def test_oracle_is_aligned_with_relevant_clients(world: Path) -> None:
    rel = np.load(world / "input" / "relevant_clients.npy")
    ids = np.load(world / "oracle" / "client_ids.npy")
    emb = np.load(world / "oracle" / "embeddings.npy")
    assert np.array_equal(np.sort(ids), np.sort(rel))
    assert emb.shape == (len(rel), sum(width for _, width, _, _ in BLOCKS))
    assert np.isfinite(emb).all()
    assert emb.std(axis=0).min() > 0  # no constant column
    assert emb.shape[1] <= 512
    assert np.abs(emb.astype(np.float64).mean(axis=0)).max() < 0.01  # standardised columns
    assert np.allclose(emb.astype(np.float64).std(axis=0), 1.0, atol=0.01)
    readme = (world / "oracle" / "README.md").read_text()
    assert all(f"| {name} |" in readme for name, _, _, _ in BLOCKS)


def test_same_seed_same_bytes_other_seed_differs(tmp_path: Path) -> None:
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    for root, seed in ((a, 7), (b, 7), (c, 8)):
        generate(root, n_users=400, scale=None, seed=seed, show_progress=False)
    names = [f"{e}.parquet" for e in EVENT_TYPES] + [PROPERTIES_FILE, "input/relevant_clients.npy",
                                                     "oracle/embeddings.npy", "oracle/client_ids.npy", "world.json"]
    for name in names:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    assert (a / "page_visit.parquet").read_bytes() != (c / "page_visit.parquet").read_bytes()


def test_several_chunks_give_distinct_clients(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(synth_params, "CHUNK_USERS", 150)
    monkeypatch.setattr(synth_world, "CHUNK_USERS", 150)
    summary = generate(tmp_path / "w", n_users=400, scale=None, seed=3, show_progress=False)
    assert summary.params.n_chunks == 3
    visits = pl.read_parquet(tmp_path / "w" / "page_visit.parquet")
    assert visits["client_id"].n_unique() > 300
    rel = np.load(tmp_path / "w" / "input" / "relevant_clients.npy")
    assert len(np.unique(rel)) == len(rel) == summary.n_relevant
    assert "page_visit" in summary.describe()


def test_oracle_in_blocks_is_bit_identical_to_the_whole_matrix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Blocks of rows bound the oracle's memory; they must not change a bit of its output."""
    captured: list[synth_oracle.Hidden] = []
    monkeypatch.setattr(synth_world, "write_oracle", lambda out, ids, h: captured.append(h))
    generate(tmp_path / "w", n_users=3000, scale=None, seed=5, show_progress=False)
    h = captured[0]
    x = synth_oracle._raw_rows(replace(h))  # the whole float64 matrix, standardised by numpy
    sd = x.std(axis=0)
    whole = ((x - x.mean(axis=0)) / np.where(sd > 0, sd, 1.0)).astype(np.float16)
    monkeypatch.setattr(synth_oracle, "BLOCK_ROWS", 1000)
    assert len(h.users) > 2000  # two blocks: 1000 rows, then the remainder
    assert np.array_equal(synth_oracle.oracle_matrix(h).view(np.int16), whole.view(np.int16))


def test_refuses_to_overwrite_other_data_but_replaces_a_world(tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    with pytest.raises(ValueError, match="not a synthetic world"):
        generate(other, n_users=100, scale=None, seed=0, show_progress=False)
    assert (other / "keep.txt").read_text() == "mine"
    w = tmp_path / "w"
    generate(w, n_users=100, scale=None, seed=0, show_progress=False)
    (w / "stale.txt").write_text("old")
    generate(w, n_users=100, scale=None, seed=0, show_progress=False)
    assert not (w / "stale.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other", "w"]


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="unknown scale"):
        synth_params.WorldParams.for_scale("huge", None, 0)
    with pytest.raises(ValueError, match="seed"):
        synth_params.WorldParams.for_scale("tiny", None, -1)


def test_grouped_sampler_by_hand() -> None:
    # group 0 holds items 0 (weight 1) and 2 (weight 3); group 1 holds item 1 (weight 0); group 2 is empty
    s = GroupedSampler.build(np.array([0, 1, 0]), np.array([1.0, 0.0, 3.0]), n_groups=3)
    got = s.sample(np.array([0, 0, 0, 1, 2]), np.array([0.1, 0.3, 0.9, 0.5, 0.5]))
    assert got.tolist() == [0, 2, 2, -1, -1]  # 0.1·4 < 1 → item 0; 0.3·4 = 1.2 ≥ 1 → item 2


def test_draw_rows_and_quantize_by_hand() -> None:
    probs = np.array([[1.0, 1.0, 2.0], [0.0, 0.0, 5.0]])
    assert draw_rows(probs, np.array([0.2, 0.0])).tolist() == [0, 2]
    assert draw_rows(probs, np.array([0.6, 0.99])).tolist() == [2, 2]
    assert quantize(np.array([-10.0, 0.0, 1.0, 10.0])).tolist() == [0, 128, 176, 255]


def test_scatter_ids_are_distinct_and_keyed() -> None:
    ids = scatter_ids(np.arange(100_000), seed=5, kind=1)
    assert len(np.unique(ids)) == 100_000 and ids.min() >= 0
    assert not np.array_equal(ids, scatter_ids(np.arange(100_000), seed=6, kind=1))
    assert np.array_equal(ids[500:600], scatter_ids(np.arange(500, 600), seed=5, kind=1))


def test_new_skus_keep_selling_into_the_validation_window(tmp_path: Path) -> None:
    """New-SKU propensity is learnable only if the SKUs new in the train-target window sell again later."""
    generate(tmp_path / "w", n_users=8_000, scale=None, seed=1, show_progress=False)
    ev = {e: pl.read_parquet(tmp_path / "w" / f"{e}.parquet").with_columns(ts=pl.col("timestamp").str.to_datetime())
          for e in ITEM_EVENTS}
    last = ev["product_buy"]["ts"].max()
    cutoff = dt.datetime.combine((last - dt.timedelta(days=27)).date(), dt.time())
    seen = pl.concat([f.filter(pl.col("ts") < cutoff).select("sku") for f in ev.values()])["sku"]
    in_validation = pl.col("ts") >= cutoff + dt.timedelta(days=14)
    new = (
        ev["product_buy"].filter(pl.col("ts") >= cutoff, ~pl.col("sku").is_in(seen.implode()))
        .group_by("sku").agg(train=(~in_validation).sum(), validation=in_validation.sum())
        .filter(pl.col("train") >= 2)  # the SKUs that head the new-SKU targets
    )
    assert len(new) >= 10
    assert (new["validation"] > 0).mean() >= 0.6


def test_complement_follow_ups_tie_sessions_to_earlier_purchases(tmp_path: Path) -> None:
    """With `complements` a purchase is often followed within days by an addition in its category's
    complement; without it, as rarely as chance allows."""
    shares = []
    for p in (0.0, 0.5):
        root = tmp_path / f"w{p}"
        summary = generate(root, n_users=1500, scale=None, seed=2, show_progress=False, complements=p)
        cat = build_catalogue(summary.params)
        follows = dict(zip(cat.cat_id.tolist(), cat.cat_id[complement_categories(summary.params)].tolist()))
        props = pl.read_parquet(root / PROPERTIES_FILE).select("sku", "category")
        read = lambda e: pl.read_parquet(root / f"{e}.parquet").with_columns(  # noqa: E731
            ts=pl.col("timestamp").str.to_datetime()).join(props, on="sku")
        buys = read("product_buy").with_columns(
            want=pl.col("category").replace_strict(follows, return_dtype=pl.Int64)).with_row_index("buy")
        adds = read("add_to_cart").select("client_id", want="category", add_ts="ts")
        hit = buys.join(adds, on=["client_id", "want"]).filter(
            (pl.col("add_ts") > pl.col("ts")) & (pl.col("add_ts") < pl.col("ts") + pl.duration(days=10)))
        shares.append(hit["buy"].n_unique() / len(buys))
    assert summary.params.complements == 0.5 and json.loads((root / "world.json").read_text())["complements"] == 0.5
    assert shares[0] < 0.02 and shares[1] > 0.15, shares  # measured: .002 and .24


def test_complements_is_a_chance() -> None:
    for bad in (-0.1, 1.0):
        with pytest.raises(ValueError, match="complements"):
            synth_params.WorldParams.for_scale("tiny", None, 0, bad)
