"""The fitted profile as a model folder, `ubp embed --model`, content-keyed caches, `ubp similar`, `ubp cache`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from click.testing import CliRunner

from ubp.cli import main
from ubp.entry import read_entry
from ubp.layout import EVENT_TYPES, PROPERTIES_FILE

RECIPE = """
seed = 0
[[blocks]]
name = "features"
weight = 2.0
pca = 16
[[blocks]]
name = "counts"
weight = 0.5
normalise = "standardize"
"""
RAW = [PROPERTIES_FILE, *(f"{t}.parquet" for t in EVENT_TYPES), "input/relevant_clients.npy"]


def ubp(*args: str) -> str:
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.output


def copy_raw(world: Path, to: Path) -> Path:
    """The raw challenge files of `world` alone (no prepared store, split or oracle)."""
    for name in RAW:
        (to / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(world / name, to / name)
    return to


def rows_by_id(entry: Path) -> dict[int, np.ndarray]:
    ids, emb = read_entry(entry)
    return dict(zip(ids.tolist(), emb))


@pytest.fixture(scope="module")
def fitted(tiny_world: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """(log folder, model folder, the fit's own entry) of a two-block profile with PCA."""
    from ubp.cache import cache_root
    from ubp.encoders.base import Run
    from ubp.pipeline import ensure_split
    from ubp.profile import build_profile
    from ubp.recipe import load_recipe

    tmp = tmp_path_factory.mktemp("fitted")
    (tmp / "recipe.toml").write_text(RECIPE)
    log = copy_raw(tiny_world, tmp / "log")
    window = ensure_split(log)
    build_profile(window, load_recipe(tmp / "recipe.toml"), tmp / "entry", cache_root() / "blocks",
                  Run(seed=0, show_progress=False), model_dir=tmp / "model")
    return log, tmp / "model", tmp / "entry"


def test_the_saved_model_reproduces_the_fit_entry_bit_for_bit(fitted, tmp_path: Path) -> None:
    log, model, entry = fitted
    info = json.loads((model / "model.json").read_text())
    assert info["fit_window"]["cutoff"] and info["fit_window"]["first_event"] < info["fit_window"]["cutoff"]
    assert [b["name"] for b in info["blocks"]] == ["features", "counts"] and info["input_schema"]["stream"]
    out = ubp("embed", "--model", model, "--data-dir", log, "--as-of", info["fit_window"]["cutoff"], "--out", tmp_path / "e")
    assert "no refit" in out
    for name in ("client_ids.npy", "embeddings.npy"):
        assert (tmp_path / "e" / name).read_bytes() == (entry / name).read_bytes()
    manifest = json.loads((tmp_path / "e" / "profile.json").read_text())
    assert [b["columns"] for b in manifest["blocks"]] == [[0, 16], [16, manifest["width"]]]


def test_a_copied_model_embeds_new_clients_of_another_log_at_a_later_date(fitted, tmp_path: Path) -> None:
    """A second log of the same shop with 30% new clients, embedded later by a copy of the model:
    known clients' rows equal the fit log's embedding at that date, new ones are finite, the entry valid."""
    from ubp.evaluation.validate import validate_entry

    log, model, _ = fitted
    copied = tmp_path / "elsewhere" / "model"
    shutil.copytree(model, copied)
    relevant = np.load(log / "input" / "relevant_clients.npy")
    twins = relevant[: int(0.3 * len(relevant) / 0.7)]
    offset = int(relevant.max()) + 1_000_000
    log2 = copy_raw(log, tmp_path / "log2")
    for kind in EVENT_TYPES:
        events = pl.read_parquet(log / f"{kind}.parquet")
        new = events.filter(pl.col("client_id").is_in(twins.tolist())).with_columns(pl.col("client_id") + offset)
        pl.concat([events, new]).write_parquet(log2 / f"{kind}.parquet")
    np.save(log2 / "input" / "relevant_clients.npy", np.concatenate([relevant, twins + offset]))
    as_of = "2022-11-20"  # after the fit window's end (2022-10-29)
    out = ubp("embed", "--model", copied, "--data-dir", log2, "--as-of", as_of, "--out", tmp_path / "e2")
    assert "no refit" in out and f"{len(twins):,} not seen at fit time" in out
    assert validate_entry(log2, tmp_path / "e2", relevant_check=True) == []
    np.save(tmp_path / "known.npy", relevant)
    ubp("embed", "--model", model, "--data-dir", log, "--as-of", as_of, "--clients", tmp_path / "known.npy", "--out", tmp_path / "e1")
    second, first = rows_by_id(tmp_path / "e2"), rows_by_id(tmp_path / "e1")
    for cid in relevant.tolist():
        np.testing.assert_array_equal(second[cid], first[cid])
    new_rows = np.stack([second[int(c) + offset] for c in twins])
    assert np.isfinite(new_rows).all()
    # a new client with the same events as a known one gets the same row: nothing depends on the id
    np.testing.assert_array_equal(new_rows, np.stack([first[int(c)] for c in twins]))


def test_as_of_cuts_the_log(fitted, tmp_path: Path) -> None:
    from ubp.cache import cache_root
    from ubp.data.snapshot import window_at
    from datetime import datetime

    log, _, _ = fitted
    window = window_at(log, datetime(2022, 9, 1), cache_root())
    latest = window.stream().select(pl.col("timestamp").max()).collect().item()
    assert latest < datetime(2022, 9, 1) and window.cutoff == datetime(2022, 9, 1)
    assert window_at(log, datetime(2022, 9, 1), cache_root()).root == window.root  # cut once


def test_parquet_outputs_carry_the_profile_in_either_layout(fitted, tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    log, model, entry = fitted
    cutoff = json.loads((model / "model.json").read_text())["fit_window"]["cutoff"]
    ids, emb = read_entry(entry)
    for layout, dtype in (("list", "float32"), ("named", "float16")):
        out = tmp_path / layout
        ubp("embed", "--model", model, "--data-dir", log, "--as-of", cutoff, "--out", out, "--format", "parquet",
            "--dtype", dtype, "--columns", layout)
        schema = pq.read_schema(out / "embeddings.parquet")
        got_ids, got = read_entry(out)
        np.testing.assert_array_equal(got_ids, ids)
        assert got.dtype == np.dtype(dtype) and got.shape == emb.shape
        np.testing.assert_allclose(got.astype(np.float32), emb.astype(np.float32), rtol=1e-3, atol=1e-3)
        assert (out / "profile.json").is_file()
        if layout == "named":
            assert schema.names[:3] == ["client_id", "features_0", "features_1"] and schema.names[-1] == "counts_624"


def test_halved_log_splits_and_fits_again_and_a_moved_folder_hits_the_cache(tiny_world: Path, tmp_path: Path) -> None:
    log = copy_raw(tiny_world, tmp_path / "a")
    cache = ("--cache", tmp_path / "cache")  # empty: the same content fitted elsewhere in this session would hit
    first = ubp("embed", "--blocks", "counts", "--data-dir", log, "--out", tmp_path / "e1", *cache)
    window_json = (log / "input" / "window" / "window.json").read_text()
    split_stamp = (log / "input" / "split_key.json").stat().st_mtime_ns
    profile = json.loads((tmp_path / "e1" / "profile.json").read_text())
    assert profile["cached_blocks"] == [] and first

    moved = log.rename(tmp_path / "renamed")
    ubp("embed", "--blocks", "counts", "--data-dir", moved, "--out", tmp_path / "e2", *cache)
    assert json.loads((tmp_path / "e2" / "profile.json").read_text())["cached_blocks"] == ["counts"]
    assert (tmp_path / "e2" / "embeddings.npy").read_bytes() == (tmp_path / "e1" / "embeddings.npy").read_bytes()
    assert (moved / "input" / "split_key.json").stat().st_mtime_ns == split_stamp  # not split again

    buys = pl.read_parquet(moved / "product_buy.parquet")
    buys.head(len(buys) // 2).write_parquet(moved / "product_buy.parquet")
    ubp("embed", "--blocks", "counts", "--data-dir", moved, "--out", tmp_path / "e3", *cache)
    assert (moved / "input" / "window" / "window.json").read_text() != window_json  # a new split
    assert json.loads((tmp_path / "e3" / "profile.json").read_text())["cached_blocks"] == []  # a new fit
    assert (tmp_path / "e3" / "embeddings.npy").read_bytes() != (tmp_path / "e1" / "embeddings.npy").read_bytes()


def test_code_version_follows_every_ubp_import(tmp_path: Path) -> None:
    from ubp.fingerprint import _ubp_imports, code_version

    src = b"import os\nfrom ubp.chunks import spans\nfrom . import sessions\ndef f():\n    from ubp.encoders import tabular\n"
    found = set(_ubp_imports(src, "ubp.encoders.features.encoder", is_package=False))
    assert {"ubp.chunks", "ubp.encoders.features.sessions", "ubp.encoders.tabular"} <= found
    assert code_version("ubp.encoders.counts") != code_version("ubp.encoders.random")


def test_cache_list_and_clear(fitted, tmp_path: Path) -> None:
    from ubp.cache import cache_root

    listing = ubp("cache", "list")
    assert "blocks" in listing and "block=features" in listing and "MiB" in listing
    root = tmp_path / "cache"
    shutil.copytree(cache_root(), root)
    assert "removed 0 entries" in ubp("cache", "clear", "--older-than", "1d", "--cache", root)
    out = ubp("cache", "clear", "--cache", root)
    assert "removed 0 entries" not in out and "0 entries" in ubp("cache", "list", "--cache", root)
    result = CliRunner().invoke(main, ["cache", "clear", "--older-than", "soon", "--cache", str(root)])
    assert result.exit_code != 0 and "--older-than" in result.output


def test_similar_finds_neighbours_and_keeps_its_index(fitted, tmp_path: Path) -> None:
    _, _, entry = fitted
    e = tmp_path / "entry"
    shutil.copytree(entry, e)
    ids, _ = read_entry(e)
    out = ubp("similar", "--entry", e, "--client", int(ids[0]), "-k", 5)
    lines = out.strip().splitlines()
    assert lines[0].split("\t") == ["client_id", "rank", "neighbour_id", "similarity"] and len(lines) == 6
    assert str(ids[0]) not in {line.split("\t")[2] for line in lines[1:]}
    assert len(list(e.glob("neighbours-*.faiss"))) == 1
    np.save(tmp_path / "q.npy", ids[:3])
    ubp("similar", "--entry", e, "--clients", tmp_path / "q.npy", "--out", tmp_path / "n.parquet")
    assert pl.read_parquet(tmp_path / "n.parquet").shape == (30, 4)
    result = CliRunner().invoke(main, ["similar", "--entry", str(e), "--client", "-5"])
    assert result.exit_code != 0 and "not in the entry" in result.output


def test_hnsw_recall_against_the_exact_index() -> None:
    from ubp.neighbours import build_index, unit_rows

    rng = np.random.default_rng(0)
    x = unit_rows(rng.normal(size=(3000, 16)) + np.repeat(rng.normal(size=(30, 16)) * 2, 100, axis=0))
    exact, approx = build_index(x), build_index(x, exact_max=100)
    assert type(exact).__name__ == "IndexFlatIP" and type(approx).__name__ == "IndexHNSWFlat"
    _, want = exact.search(x[:200], 10)
    _, got = approx.search(x[:200], 10)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(want, got)])
    assert recall > 0.9


def test_a_model_buckets_a_later_logs_float_prices_with_the_fit_logs_edges(tiny_world: Path, tmp_path: Path) -> None:
    """New expensive products move a catalogue's quantiles; the model's own edges keep every old
    product in the bucket it was fitted with, so the clients' rows do not move."""
    from ubp.cache import cache_root
    from ubp.encoders.base import Run
    from ubp.pipeline import ensure_split
    from ubp.profile import build_profile
    from ubp.recipe import recipe_for_blocks

    log = copy_raw(tiny_world, tmp_path / "log")
    products = pl.read_parquet(log / PROPERTIES_FILE).with_columns(pl.col("price").cast(pl.Float64) * 2.5 + 0.99)
    products.write_parquet(log / PROPERTIES_FILE)
    build_profile(ensure_split(log), recipe_for_blocks(["counts"]), tmp_path / "fit_entry", cache_root() / "blocks",
                  Run(seed=0, show_progress=False), model_dir=tmp_path / "model")
    assert (tmp_path / "model" / "price_edges.json").is_file()

    later = copy_raw(log, tmp_path / "later")
    n = len(products) // 2
    expensive = products.head(n).with_columns(pl.col("sku") + int(products["sku"].max()) + 1,
                                              pl.col("price") * 1000.0)
    pl.concat([products, expensive]).write_parquet(later / PROPERTIES_FILE)
    ubp("embed", "--model", tmp_path / "model", "--data-dir", log, "--out", tmp_path / "a")
    ubp("embed", "--model", tmp_path / "model", "--data-dir", later, "--out", tmp_path / "b")
    a, b = rows_by_id(tmp_path / "a"), rows_by_id(tmp_path / "b")
    assert a.keys() == b.keys()
    assert all(np.array_equal(a[k], b[k]) for k in a)
    edges = json.loads((later / "prepared" / "price_edges.json").read_text())
    assert edges["edges"] == json.loads((tmp_path / "model" / "price_edges.json").read_text())["edges"]
