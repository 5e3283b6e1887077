"""One contract, every registered encoder (scikit-learn's test_common, our version).

The `Encoder` protocol (checked with isinstance), `NotFittedError` before fit, shape, dtype, row
order, subset invariance (a client's row does not depend on who is embedded with it), save/load
round trip, same seed → same output, and that events at or after the cutoff cannot change the
output; plus a log with an absent event type.
"""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from ubp.data.window import InputWindow, write_window
from ubp.encoders import REGISTRY, create
from ubp.encoders.base import Encoder, Run
from ubp.errors import NotFittedError
from ubp.layout import EventType
from ubp.recipe import NORMALISATIONS

# Small settings so that every block fits in seconds on the tiny world.
FAST_OPTIONS: dict[str, dict] = {
    "random": {"dim": 16},
    "autoencoder": {"input_block": "counts", "epochs": 2, "hidden": [64, 32], "latent": 8},
    "graph": {"dim": 16, "epochs": 1},
    "emde": {"dim": 16, "n_partitions": 2, "n_buckets": 16, "out_dim": 16, "iterations": 2},
    "sequence": {"preset": "tiny", "max_steps": 6},
    "dcn": {"epochs": 1},
}


def fast(name: str) -> object:
    return create(name, **FAST_OPTIONS.get(name, {}))


@pytest.fixture(scope="module")
def tampered_world(tiny_world: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny world's window with events at and after the cutoff added to every shard."""
    root = tmp_path_factory.mktemp("tampered")
    shutil.copytree(tiny_world / "input", root / "input")
    shutil.copytree(tiny_world / "oracle", root / "oracle")
    window = InputWindow.open(root)
    for shard in window.shards:
        events = pl.read_parquet(shard)
        sample = events.head(500)
        offset = window.cutoff - sample["timestamp"].min()
        future = pl.concat([
            sample.with_columns(pl.col("timestamp") + offset + timedelta(hours=1)),
            sample.head(20).with_columns(pl.lit(window.cutoff).cast(pl.Datetime("us")).alias("timestamp")),
        ])
        pl.concat([events, future]).sort(["client_id", "timestamp"]).write_parquet(shard)
    return root


@pytest.fixture(scope="module")
def no_search_world(tiny_world: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny world's window without any search event (a shop that logs no searches)."""
    root = tmp_path_factory.mktemp("nosearch")
    window = InputWindow.open(tiny_world)
    shutil.copytree(tiny_world / "oracle", root / "oracle")
    write_window(
        window.stream().filter(pl.col("event_type") != EventType.SEARCH_QUERY.value),
        window.products(), window.cutoff, root / "input", window.relevant_clients,
    )
    return root


@pytest.mark.parametrize("name", REGISTRY.names())
def test_encoder_contract(name: str, tiny_world: Path, tampered_world: Path, tmp_path: Path) -> None:
    window = InputWindow.open(tiny_world)
    ids = window.relevant_clients[:300]
    unknown = np.array([ids.max() + 12345, -7], dtype=np.int64)  # clients with no events at all
    ids = np.concatenate([ids, unknown])

    enc = fast(name)
    assert isinstance(enc, Encoder) and enc.name == name
    assert enc.preferred_normalise in NORMALISATIONS and enc.preferred_normalise != "auto"
    assert not hasattr(enc, "cache_")  # fitted state exists only after fit
    with pytest.raises(NotFittedError, match=name):
        enc.transform(window, ids)

    enc = enc.fit(window, Run(seed=3, work_dir=tmp_path / "a", show_progress=False))
    x = enc.transform(window, ids)
    assert x.dtype == np.float32 and x.ndim == 2 and x.shape[0] == len(ids) and x.shape[1] >= 1
    assert np.isfinite(x).all()

    perm = np.random.default_rng(0).permutation(len(ids))
    np.testing.assert_allclose(enc.transform(window, ids[perm]), x[perm], rtol=1e-5, atol=1e-6)

    # Subset invariance: a few clients (one without events) get the rows they get among all.
    subset = np.array([len(ids) - 1, 5, 0, 17])
    np.testing.assert_allclose(enc.transform(window, ids[subset]), x[subset], rtol=1e-5, atol=1e-6)

    enc.save(tmp_path / "saved")
    loaded = type(enc).load(tmp_path / "saved")
    assert isinstance(loaded, Encoder)
    np.testing.assert_allclose(loaded.transform(window, ids), x, rtol=1e-5, atol=1e-6)

    # Same seed, same output — on a window that also holds events at/after the cutoff.
    tampered = InputWindow.open(tampered_world)
    again = fast(name).fit(tampered, Run(seed=3, work_dir=tmp_path / "b", show_progress=False))
    np.testing.assert_allclose(again.transform(tampered, ids), x, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", REGISTRY.names())
def test_encoder_handles_absent_event_type(name: str, no_search_world: Path, tmp_path: Path) -> None:
    window = InputWindow.open(no_search_world)
    assert window.absent_event_types == ["search_query"]
    ids = window.relevant_clients[:100]
    x = fast(name).fit(window, Run(seed=0, work_dir=tmp_path, show_progress=False)).transform(window, ids)
    assert x.shape[0] == len(ids) and np.isfinite(x).all()


@pytest.mark.parametrize("name", REGISTRY.names())
def test_unknown_option_is_an_error(name: str) -> None:
    with pytest.raises((TypeError, ValueError)):
        create(name, no_such_option=1)
