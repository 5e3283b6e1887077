"""The per-shard map gives the same block on Ray as in this process, and its tasks stay small."""

from __future__ import annotations

import os
from pathlib import Path

import cloudpickle
import numpy as np
import polars as pl
import pytest

from ubp import engines, store
from ubp.data.window import InputWindow, write_window
from ubp.encoders.base import Run
from ubp.encoders.registry import create
from ubp.errors import UsageError


@pytest.fixture(scope="module")
def sharded_window(tiny_window, tmp_path_factory):
    """The tiny world's input window rewritten as four shards."""
    events = tiny_window.stream()
    n = events.select(pl.len()).collect().item()
    root = tmp_path_factory.mktemp("sharded") / "world" / "input"
    return write_window(
        events,
        tiny_window.products(),
        tiny_window.cutoff,
        root,
        tiny_window.relevant_clients,
        events_per_shard=n // 4 + 1,
    )


def test_unknown_engine_is_an_error():
    with pytest.raises(UsageError, match="unknown engine 'spark'"), engines.use("spark"):
        pass


def test_engine_settings_come_from_options_then_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("UBP_RAY_TASK_CPUS", "2")
    monkeypatch.setenv("UBP_RAY_TASK_MEMORY", str(2**30))
    monkeypatch.setenv("UBP_RAY_RUNTIME_ENV", '{"env_vars": {"A": "1"}}')
    monkeypatch.chdir(tmp_path)
    engine = engines.from_env("ray", scratch="scratch")
    assert (engine.num_cpus, engine.memory, engine.runtime_env) == (2.0, 2**30, {"env_vars": {"A": "1"}})
    assert engine.scratch == str(tmp_path / "scratch")  # resolved once, here
    assert engines.from_env("ray", runtime_env='{"pip": ["x"]}').runtime_env == {"pip": ["x"]}
    with pytest.raises(UsageError, match="not JSON"):
        engines.from_env("ray", runtime_env="{oops")


def test_locations_keep_uris_and_resolve_relative_paths(tmp_path, monkeypatch):
    assert store.join("s3://bucket/world", "input", "a.parquet") == "s3://bucket/world/input/a.parquet"
    assert store.resolve("s3://bucket/world/") == "s3://bucket/world"
    assert store.parent("gs://b/w/input") == "gs://b/w"
    monkeypatch.chdir(tmp_path)
    assert store.resolve("world") == str(tmp_path / "world")
    with pytest.raises(UsageError, match="unsupported storage scheme 'ftp'"):
        store.resolve("ftp://host/world")


def test_a_relative_data_dir_is_resolved_on_the_driver(tiny_world: Path, monkeypatch):
    monkeypatch.chdir(tiny_world.parent)
    window = InputWindow.open(tiny_world.name)
    assert os.path.isabs(window.root) and all(os.path.isabs(s) for s in window.shards)


def test_ray_map_keeps_task_order_limits_threads_and_cleans_scratch(tmp_path):
    engine = engines.Engine("ray", num_cpus=1, scratch=str(tmp_path / "scratch"))
    rows = lambda k: pl.DataFrame({"k": [k] * k, "threads": [pl.thread_pool_size()] * k})  # noqa: E731 (by value)
    with engines.use(engine):
        got = list(engines.map_shards(rows, [0, 1, 2, 3]))
    assert [len(t) for t in got] == [0, 1, 2, 3]
    assert [t["k"].to_list() for t in got[1:]] == [[1], [2, 2], [3, 3, 3]]
    assert {v for t in got[1:] for v in t["threads"]} == {1}  # polars runs one thread per 1-CPU task
    assert not any((tmp_path / "scratch").rglob("*.parquet"))  # tables read back and removed


@pytest.mark.parametrize("name", ["counts", "features"])
def test_shard_function_carries_no_cache(sharded_window, name):
    block = create(name).fit(sharded_window, Run(show_progress=False))
    assert block.cache_ is not None and block.cache_.matrix.nbytes > 0
    payload = cloudpickle.dumps(block._table(sharded_window))
    assert len(payload) < block.cache_.matrix.nbytes / 4
    assert b"RawCache" not in payload and type(block).__name__.encode() not in payload


@pytest.mark.parametrize("name", ["counts", "features", "emde"])
def test_ray_engine_matches_local(sharded_window, name, tmp_path):
    assert len(sharded_window.shards) == 4
    ids = np.concatenate([sharded_window.relevant_clients, [-5]])  # and a client with no events
    local = create(name).fit(sharded_window, Run(show_progress=False)).transform(sharded_window, ids)
    with engines.use(engines.Engine("ray", scratch=str(tmp_path))):
        remote = create(name).fit(sharded_window, Run(show_progress=False)).transform(sharded_window, ids)
    np.testing.assert_array_equal(local, remote)


def test_ray_tokenization_matches_local(sharded_window, tmp_path):
    from ubp.encoders.sequence.tokens import tokenize

    local = tokenize(sharded_window, 1024, 100)
    with engines.use(engines.Engine("ray", scratch=str(tmp_path))):
        remote = tokenize(sharded_window, 1024, 100, folder=tmp_path / "tokens")
    for name in ("client_ids", "offsets", "event_type", "timestamp", "row", "row_ids", "row_price", "row_text"):
        np.testing.assert_array_equal(getattr(local, name), getattr(remote, name), err_msg=name)


def test_ray_prepare_writes_the_local_store_and_reports_a_bad_row_as_itself(tiny_world, tmp_path):
    import shutil

    from ubp.data.prepare import prepare
    from ubp.errors import InputError
    from ubp.layout import EVENT_TYPES, PROPERTIES_FILE

    raw = [PROPERTIES_FILE, *(f"{t}.parquet" for t in EVENT_TYPES), "input/relevant_clients.npy"]
    for name in raw:
        (tmp_path / "world" / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(tiny_world / name, tmp_path / "world" / name)
    with engines.use(engines.Engine("ray", scratch=str(tmp_path / "scratch"))):
        prepare(tmp_path / "world")
        written = store.list_files(tmp_path / "world" / "prepared")
        assert written == store.list_files(tiny_world / "prepared")
        for name in written:
            assert (tmp_path / "world" / "prepared" / name).read_bytes() == (tiny_world / "prepared" / name).read_bytes()
        buys = pl.read_parquet(tmp_path / "world" / "add_to_cart.parquet")
        buys.with_columns(pl.when(pl.int_range(pl.len()) == 2).then(None).otherwise(pl.col("timestamp"))
                          .alias("timestamp")).write_parquet(tmp_path / "world" / "add_to_cart.parquet")
        with pytest.raises(InputError, match=r"add_to_cart.parquet: column 'timestamp': null value \(example row: row 2:"):
            prepare(tmp_path / "world")


def test_ray_split_sharding_writes_the_local_files(sharded_window, tmp_path):
    events, products = sharded_window.stream(), sharded_window.products()
    n = events.select(pl.len()).collect().item()
    with engines.use(engines.Engine("ray", scratch=str(tmp_path / "scratch"))):
        remote = write_window(events, products, sharded_window.cutoff, tmp_path / "world" / "input",
                              sharded_window.relevant_clients, events_per_shard=n // 4 + 1)
    assert [Path(s).name for s in remote.shards] == [Path(s).name for s in sharded_window.shards]
    for a, b in zip(remote.shards, sharded_window.shards):
        assert Path(a).read_bytes() == Path(b).read_bytes()


def test_ray_graph_edges_match_local(sharded_window, tmp_path):
    from ubp.encoders.graph.edges import read_edges

    local = read_edges(sharded_window)
    with engines.use(engines.Engine("ray", scratch=str(tmp_path))):
        remote = read_edges(sharded_window)
        some = read_edges(sharded_window, sharded_window.relevant_clients[:50])
    assert local.height > 0 and local.equals(remote)
    assert some.equals(local.filter(pl.col("client_id").is_in(sharded_window.relevant_clients[:50].tolist())))
