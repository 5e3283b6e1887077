"""A real shop's log in its own types: ISO timestamps with offsets, float prices, string ids, free text.

The tiny world is rewritten in those types; it must go through prepare → split → embed and give
a valid entry, and where the conversion is exact (timestamps) the entry must equal the one built
from the challenge's own types.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from ubp.data.conversions import PrepareOptions, hash_strings, text_vectors
from ubp.data.prepare import prepare
from ubp.data.split import split
from ubp.data.window import InputWindow
from ubp.encoders.base import Run
from ubp.errors import InputError
from ubp.evaluation.validate import validate_entry
from ubp.layout import EVENT_TYPES, PROPERTIES_FILE
from ubp.profile import build_profile
from ubp.recipe import recipe_for_blocks
from ubp.synth.shop_log import iso_with_offset, raw_copy, write_shop_log

BLOCKS = ["counts", "features"]


def rewrite(root: Path, name: str, fn) -> None:
    path = root / name
    fn(pl.read_parquet(path)).write_parquet(path)


def entry_of(data_dir: Path, out: Path) -> tuple[np.ndarray, np.ndarray, dict]:
    window = InputWindow.open(data_dir)
    profile = build_profile(window, recipe_for_blocks(BLOCKS), out, out / "blocks", Run(seed=0))
    return np.load(out / "client_ids.npy"), np.load(out / "embeddings.npy"), profile


@pytest.fixture(scope="module")
def reference(tiny_world: Path, tmp_path_factory) -> tuple[np.ndarray, np.ndarray]:
    ids, emb, _ = entry_of(tiny_world, tmp_path_factory.mktemp("reference") / "entry")
    return ids, emb


def test_iso_timestamps_with_offsets_give_the_same_entry(tiny_world: Path, reference, tmp_path: Path) -> None:
    root = raw_copy(tiny_world, tmp_path / "iso")
    for k, kind in enumerate(EVENT_TYPES):
        if kind == "page_visit":  # a timezone-aware datetime column in ms
            rewrite(root, f"{kind}.parquet", lambda f: f.with_columns(
                pl.col("timestamp").str.to_datetime("%Y-%m-%d %H:%M:%S", time_unit="ms", time_zone="UTC")
                .dt.convert_time_zone("Asia/Tokyo")))
        else:
            rewrite(root, f"{kind}.parquet", lambda f, h=k: iso_with_offset(f, h))
    summary = prepare(root)
    text = summary.describe()
    assert "rows with a UTC offset converted to UTC" in text and "converted to naive UTC datetime[us] in page_visit" in text
    split(root)
    ids, emb, _ = entry_of(root, tmp_path / "entry")
    assert np.array_equal(ids, reference[0]) and np.array_equal(emb, reference[1])


def test_log_in_its_own_types_gives_a_valid_entry(tiny_world: Path, tmp_path: Path) -> None:
    root = write_shop_log(tiny_world, tmp_path / "shop", n_unseen=7)
    names = pl.read_parquet(tiny_world / PROPERTIES_FILE)
    extra = np.array([f"new-{i}" for i in range(7)])  # the relevant clients with no event at all

    summary = prepare(root)
    text = summary.describe()
    for line in ("client_id: ", "distinct string ids hashed to int64", "Float64 prices cut into 100 catalogue-quantile buckets",
                 "free text embedded as 16-integer vectors in product_properties", "in search_query",
                 "price: bucket edges in prepared/price_edges.json (catalogue quantiles)"):
        assert line in text, text
    mapping = pl.read_parquet(root / "prepared" / "ids" / "client_id.parquet")
    assert mapping.filter(pl.col("raw") == "new-3")["id"].item() == hash_strings(np.array(["new-3"]))[0]
    products = pl.read_parquet(root / "prepared" / PROPERTIES_FILE)
    assert products["price"].min() == 0 and products["price"].max() == 99
    assert products["name"][0].to_list() == text_vectors([f"product s-{names['sku'][0]} of category k-{names['category'][0]}"])[0].tolist()

    summary = split(root)
    assert any("7 of" in n and "no event in the input window" in n for n in summary.notes), summary.notes
    ids, emb, profile = entry_of(root, tmp_path / "entry")
    assert validate_entry(root, tmp_path / "entry", relevant_check=True) == []
    assert profile["no_history_clients"] >= 7
    unseen = np.isin(ids, hash_strings(extra))
    column = profile["no_history_column"]
    assert (emb[unseen, column] == 1).all() and emb.shape[1] == column + 1


def test_price_edges_are_reused(tiny_world: Path, tmp_path: Path) -> None:
    first = raw_copy(tiny_world, tmp_path / "a")
    rewrite(first, PROPERTIES_FILE, lambda f: f.with_columns(pl.col("price").cast(pl.Float64) * 10.0))
    prepare(first)
    second = raw_copy(tiny_world, tmp_path / "b")
    rewrite(second, PROPERTIES_FILE, lambda f: f.with_columns(pl.col("price").cast(pl.Float64) * 20.0))
    prepare(second, PrepareOptions(price_edges=first / "prepared" / "price_edges.json"))
    a = pl.read_parquet(first / "prepared" / PROPERTIES_FILE)["price"]
    b = pl.read_parquet(second / "prepared" / PROPERTIES_FILE)["price"]
    assert (b >= a).all()  # doubled prices fall in the same or higher buckets of the same edges


@pytest.mark.parametrize("switch, column, file, message", [
    ("iso_timestamps", "timestamp", "product_buy.parquet", "unparseable timestamp"),
    ("price_quantiles", "price", PROPERTIES_FILE, "the price_quantiles conversion is switched off"),
    ("hash_string_ids", "url", "page_visit.parquet", "the hash_string_ids conversion is switched off"),
    ("text_vectors", "query", "search_query.parquet", "malformed vector string"),
])
def test_each_conversion_can_be_switched_off(tmp_path: Path, switch: str, column: str, file: str, message: str) -> None:
    from test_raw_validation import raw_tables, write_raw

    tables = raw_tables()
    tables["product_buy"] = tables["product_buy"].with_columns(pl.lit("2024-01-01T10:00:00+01:00").alias("timestamp"))
    tables["product_properties"] = tables["product_properties"].with_columns(pl.Series("price", [1.5, 2.5]))
    tables["page_visit"] = tables["page_visit"].with_columns(pl.Series("url", ["/a", "/b", "/c"]))
    tables["search_query"] = tables["search_query"].with_columns(pl.Series("query", ["red shoes", "blue", "x"]))
    root = write_raw(tmp_path, tables)
    assert "conversions (iso_timestamps: on" in prepare(root).describe()
    with pytest.raises(InputError, match=message) as err:
        prepare(root, PrepareOptions(**{switch: False}))
    assert str(err.value).startswith(f"{root / file}: column '{column}'")


def test_integer_prices_outside_the_buckets_say_how_to_fix(tmp_path: Path) -> None:
    from test_raw_validation import raw_tables, write_raw

    tables = raw_tables()
    tables["product_properties"] = tables["product_properties"].with_columns(pl.Series("price", [1299, 25]))
    with pytest.raises(InputError, match="integer price 1299 is not a challenge price bucket 0..99.*floats or decimals"):
        prepare(write_raw(tmp_path, tables))


def test_prepare_command_lists_conversions_and_takes_the_switches(tmp_path: Path) -> None:
    from click.testing import CliRunner
    from test_raw_validation import raw_tables, write_raw

    from ubp.cli import main

    tables = raw_tables()
    tables["page_visit"] = tables["page_visit"].with_columns(pl.Series("url", ["/a", "/b", "/c"]))
    root = write_raw(tmp_path, tables)
    result = CliRunner().invoke(main, ["prepare", "--data-dir", str(root)])
    assert result.exit_code == 0 and "url: 3 distinct string ids hashed to int64 (mapping prepared/ids/url.parquet)" in result.output
    result = CliRunner().invoke(main, ["prepare", "--data-dir", str(root), "--no-hash-string-ids"])
    assert result.exit_code == 1 and result.output.count("\n") == 1
    assert "column 'url': has dtype String, expected an integer type (int64) (the hash_string_ids conversion is switched off)" in result.output


def test_two_string_ids_with_one_hash_are_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import ubp.data.prepare
    from test_raw_validation import raw_tables, write_raw

    tables = raw_tables()
    tables["page_visit"] = tables["page_visit"].with_columns(pl.Series("url", ["/a", "/b", "/a"]))
    root = write_raw(tmp_path, tables)
    monkeypatch.setattr(ubp.data.prepare, "hash_strings", lambda values: np.zeros(len(values), dtype=np.int64))
    with pytest.raises(InputError, match=r"page_visit.parquet: column 'url': string ids '/a' and '/b' hash to the same int64"):
        prepare(root)
    assert not (root / "prepared").exists()
