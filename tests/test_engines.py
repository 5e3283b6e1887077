"""The per-shard map gives the same block on Ray Data as in this process."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from ubp import engines
from ubp.data.window import write_window
from ubp.encoders.base import Run
from ubp.encoders.registry import create


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
    with pytest.raises(ValueError, match="unknown engine 'spark'"), engines.use("spark"):
        pass


def test_map_shards_keeps_task_order_and_empty_tables():
    tasks = [0, 1, 2, 3]
    fn = lambda k: pl.DataFrame({"k": [k] * k})
    with engines.use("ray"):
        got = list(engines.map_shards(fn, tasks))
    assert [len(t) for t in got] == [0, 1, 2, 3]
    assert [t["k"].to_list() for t in got[1:]] == [[1], [2, 2], [3, 3, 3]]


@pytest.mark.parametrize("name", ["counts", "features"])
def test_ray_engine_matches_local(sharded_window, name):
    assert len(sharded_window.shards) == 4
    ids = np.concatenate([sharded_window.relevant_clients, [-5]])  # and a client with no events
    local = create(name).fit(sharded_window, Run(show_progress=False)).transform(sharded_window, ids)
    with engines.use("ray"):
        remote = create(name).fit(sharded_window, Run(show_progress=False)).transform(sharded_window, ids)
    np.testing.assert_array_equal(local, remote)
