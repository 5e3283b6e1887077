"""On a two-node Ray cluster, `ubp run --engine ray` on a raw world in an S3-compatible bucket
prepares and splits it there and writes the very entry the local engine writes from a local copy.

`.ci/run` starts the services on 127.0.0.1: a Ray head with no CPUs (so every task runs on the
second node), a worker node whose working directory is neither the driver's nor the data's, and
a moto S3 server; it exports UBP_TEST_RAY_ADDRESS, RAY_AUTH_TOKEN and the AWS_* variables.
Without them these tests skip; with UBP_REQUIRE_CLUSTER=1 (as `.ci/run` sets) that is a failure.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import pytest

from ubp import store

RECIPE = """
seed = 0
[[blocks]]
name = "counts"
[[blocks]]
name = "features"
"""
RAW = ["product_properties.parquet", "product_buy.parquet", "add_to_cart.parquet", "remove_from_cart.parquet",
       "page_visit.parquet", "search_query.parquet", "input/relevant_clients.npy"]
SPLIT = ["prepared", "input", "target"]  # what prepare and split write beside the raw files


@pytest.fixture(scope="module")
def cluster() -> dict[str, str]:
    """The environment of a driver of the local test cluster."""
    address, endpoint = os.environ.get("UBP_TEST_RAY_ADDRESS"), os.environ.get("AWS_ENDPOINT_URL")
    if not (address and endpoint):
        reason = "no local Ray cluster and S3 server (UBP_TEST_RAY_ADDRESS, AWS_ENDPOINT_URL); .ci/run starts both"
        if os.environ.get("UBP_REQUIRE_CLUSTER"):
            pytest.fail(reason)
        pytest.skip(reason)
    return {**os.environ, "RAY_ADDRESS": address}


def _ubp(args: list[str], env: dict[str, str], cwd: Path) -> None:
    """The CLI with a cache of its own, so that every run fits its blocks."""
    with tempfile.TemporaryDirectory(prefix="ubp-cache-") as cache:
        done = subprocess.run([sys.executable, "-m", "ubp", *args], env={**env, "UBP_CACHE_DIR": cache},
                              cwd=cwd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]


def _ubp_run(data_dir: str, out: Path, engine: str, env: dict[str, str], cwd: Path) -> None:
    """`ubp run` of the test recipe."""
    recipe = out.with_name("recipe.toml")
    recipe.write_text(RECIPE)
    _ubp(["run", "--data-dir", data_dir, "--out", str(out), "--config", str(recipe), "--engine", engine,
          "--orders", "1", "--references", "", "--device", "cpu"], env, cwd)


def _raw_copy(tiny_world: Path, to: Path) -> Path:
    """The tiny world's raw files only: every run prepares and splits it itself."""
    for name in RAW:
        (to / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(tiny_world / name, to / name)
    return to


@pytest.fixture(scope="module")
def local_run(cluster, tiny_world: Path, tmp_path_factory) -> Path:
    """The local engine's `ubp run` on a raw local copy of the tiny world (RUN/world holds the data)."""
    run = tmp_path_factory.mktemp("local")
    _raw_copy(tiny_world, run / "world")
    _ubp_run(str(run / "world"), run / "run", "local", {k: v for k, v in cluster.items() if k != "RAY_ADDRESS"}, run)
    return run


@pytest.fixture(scope="module")
def bucket_world(cluster, tiny_world: Path, tmp_path_factory) -> str:
    """The tiny world's raw files in a fresh bucket."""
    from pyarrow import fs

    bucket = f"ubp-test-{uuid.uuid4().hex[:12]}"
    s3, _ = store.filesystem(f"s3://{bucket}")
    s3.create_dir(bucket)
    raw = _raw_copy(tiny_world, tmp_path_factory.mktemp("raw"))
    fs.copy_files(str(raw), f"{bucket}/world", source_filesystem=fs.LocalFileSystem(), destination_filesystem=s3)
    return f"s3://{bucket}/world"


def _same_entry(a: Path, b: Path) -> None:
    for name in ("client_ids.npy", "embeddings.npy"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def test_tasks_run_on_the_second_node_in_another_directory(cluster, tmp_path):
    probe = ("import os, ray; ray.init(); here = ray.get_runtime_context().get_node_id()\n"
             "f = ray.remote(num_cpus=1)(lambda: (os.getcwd(), ray.get_runtime_context().get_node_id()))\n"
             "cwd, node = ray.get(f.remote()); print(cwd); print(node != here)")
    done = subprocess.run([sys.executable, "-c", probe], env=cluster, cwd=tmp_path, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    cwd, elsewhere = done.stdout.split()[-2:]
    assert cwd != str(tmp_path) and elsewhere == "True"


def test_run_on_a_bucket_on_the_cluster_gives_the_local_entry(cluster, bucket_world, local_run, tmp_path):
    from pyarrow import fs

    _ubp_run(bucket_world, tmp_path / "run", "ray", cluster, tmp_path)
    _same_entry(local_run / "run" / "entry", tmp_path / "run" / "entry")
    local = local_run / "world"
    written = [n for n in store.list_files(bucket_world) if n.split("/")[0] in SPLIT]
    assert sorted(written) == sorted(str(p.relative_to(local)) for d in SPLIT for p in (local / d).rglob("*") if p.is_file())
    for name in written:  # the prepared store, the input window and the targets, byte for byte
        assert store.read_bytes(store.join(bucket_world, name)) == (local / name).read_bytes(), name
    s3, path = store.filesystem(bucket_world)
    leftovers = s3.get_file_info(fs.FileSelector(f"{path}/input/.ubp-scratch", allow_not_found=True, recursive=True))
    assert not [f for f in leftovers if f.type == fs.FileType.File]  # the tasks' tables were removed


def test_relative_data_dir_on_the_cluster_gives_the_local_entry(cluster, tiny_world, tmp_path):
    """`ubp embed --blocks` (no scoring: this test is about paths) from a relative path."""
    from ubp.pipeline import ensure_split

    ensure_split(_raw_copy(tiny_world, tmp_path / "world"))
    entries = {}
    for engine, env in {"local": {k: v for k, v in cluster.items() if k != "RAY_ADDRESS"}, "ray": cluster}.items():
        entries[engine] = tmp_path / engine  # the worker node's cwd has no `world` in it
        _ubp(["embed", "--data-dir", "world", "--blocks", "counts,features", "--out", str(entries[engine]),
              "--engine", engine], env, tmp_path)
    _same_entry(entries["local"], entries["ray"])
