"""A log in an S3-compatible bucket (moto, served in this process) goes through prepare, split,
scoring and `ubp embed --model` as a local folder does, with the same bytes."""

from __future__ import annotations

import json
import os
import shutil
import socket
import uuid
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from click.testing import CliRunner

from ubp import store
from ubp.cli import main
from ubp.layout import EVENT_TYPES, PROPERTIES_FILE

RAW = [PROPERTIES_FILE, *(f"{t}.parquet" for t in EVENT_TYPES), "input/relevant_clients.npy"]
SPLIT = ("prepared", "input", "target")


@pytest.fixture(scope="module")
def s3():
    """A moto S3 server on 127.0.0.1 and the AWS_* environment that points at it."""
    from moto.server import ThreadedMotoServer

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    env = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1"}
    saved = {k: os.environ.get(k) for k in [*env, "AWS_ENDPOINT_URL_S3"]}
    os.environ.update(env)
    os.environ.pop("AWS_ENDPOINT_URL_S3", None)
    yield
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    server.stop()


def copy_raw(world: Path, to: Path) -> Path:
    for name in RAW:
        (to / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(world / name, to / name)
    return to


def upload(local: Path) -> str:
    """Every file of `local` in a fresh bucket; returns the world's URI."""
    from pyarrow import fs

    bucket = f"ubp-{uuid.uuid4().hex[:12]}"
    s3fs, _ = store.filesystem(f"s3://{bucket}")
    s3fs.create_dir(bucket)
    fs.copy_files(str(local), f"{bucket}/world", source_filesystem=fs.LocalFileSystem(), destination_filesystem=s3fs)
    return f"s3://{bucket}/world"


def ubp(*args: str) -> str:
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def worlds(s3, tiny_world: Path, tmp_path_factory) -> tuple[Path, str]:
    """(a local raw copy of the tiny world, the same raw files in a bucket), both split."""
    from ubp.pipeline import ensure_split

    local = copy_raw(tiny_world, tmp_path_factory.mktemp("local") / "world")
    uri = upload(local)
    ensure_split(local)
    ensure_split(uri)
    return local, uri


def test_split_in_a_bucket_writes_the_local_split_byte_for_byte(worlds):
    local, uri = worlds
    written = [n for n in store.list_files(uri) if n.split("/")[0] in SPLIT]
    assert sorted(written) == sorted(str(p.relative_to(local)) for d in SPLIT for p in (local / d).rglob("*") if p.is_file())
    assert "input/window/window.json" in written and "prepared/manifest.json" in written
    for name in written:
        assert store.read_bytes(store.join(uri, name)) == (local / name).read_bytes(), name


def test_a_split_killed_in_a_bucket_is_not_taken_as_done(worlds, monkeypatch):
    import ubp.data.split as split_module
    from ubp.pipeline import ensure_split, split_key

    _, uri = worlds
    stamp = store.join(uri, "input", "split_key.json")

    def killed(*_, **__):
        raise KeyboardInterrupt

    monkeypatch.setattr(split_module, "write_window", killed)
    monkeypatch.setattr(split_module, "is_current", lambda *_: False)  # prepare again too
    with pytest.raises(KeyboardInterrupt):
        split_module.split(uri)
    assert not store.is_file(stamp)  # removed first: the half-done split has no stamp
    monkeypatch.undo()
    ensure_split(uri)
    assert store.read_json(stamp) == split_key(uri)


def test_a_bad_raw_file_in_a_bucket_is_named_by_its_uri(s3, tiny_world: Path, tmp_path: Path):
    bad = copy_raw(tiny_world, tmp_path / "world")
    buys = pl.read_parquet(bad / "product_buy.parquet")
    buys.with_columns(pl.when(pl.int_range(pl.len()) == 3).then(None).otherwise(pl.col("sku")).alias("sku")) \
        .write_parquet(bad / "product_buy.parquet")
    uri = upload(bad)
    result = CliRunner().invoke(main, ["prepare", "--data-dir", uri])
    assert result.exit_code == 1
    assert f"{uri}/product_buy.parquet: column 'sku': null value (example row: row 3:" in result.output
    assert not store.is_file(store.join(uri, "prepared", "manifest.json"))


def test_scores_and_embed_with_a_model_read_a_bucket_as_a_folder(worlds, tmp_path: Path):
    local, uri = worlds
    recipe = tmp_path / "recipe.toml"
    recipe.write_text('seed = 0\n[[blocks]]\nname = "counts"\n')
    ubp("fit", "--data-dir", uri, "--config", recipe, "--out", tmp_path / "model", "--cache", tmp_path / "c0")
    for name, data_dir in {"local": local, "bucket": uri}.items():  # a cache each: both cut their window
        ubp("embed", "--model", tmp_path / "model", "--data-dir", data_dir, "--out", tmp_path / name,
            "--cache", tmp_path / f"cache-{name}")
        ubp("evaluate", "--data-dir", data_dir, "--embeddings-dir", tmp_path / name, "--out", tmp_path / f"eval-{name}",
            "--tasks", "churn", "--device", "cpu")
    for name in ("client_ids.npy", "embeddings.npy"):
        np.testing.assert_array_equal(np.load(tmp_path / "bucket" / name), np.load(tmp_path / "local" / name))
    scores = [json.loads((tmp_path / f"eval-{n}" / "scores.json").read_text())["tasks"]["churn"] for n in ("local", "bucket")]
    for record in scores:
        record.pop("wall_s")
        for run in record["runs"]:
            run.pop("wall_s", None)
    assert scores[0] == scores[1]  # the same labels and the same training: only the clock differs
