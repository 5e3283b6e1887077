"""On a two-node Ray cluster reading a world from an S3-compatible bucket, `ubp embed --engine ray`
writes the very bytes the local engine writes.

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

BLOCKS = "counts,features"


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


def _ubp(*args: str, env: dict[str, str], cwd: Path) -> str:
    """Run the CLI with a cache of its own, so that every run fits its blocks (no hit from another run)."""
    with tempfile.TemporaryDirectory(prefix="ubp-cache-") as cache:
        done = subprocess.run([str(Path(sys.executable).parent / "ubp"), *args], env={**env, "UBP_CACHE_DIR": cache},
                              cwd=cwd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.fixture(scope="module")
def world(cluster, tiny_world: Path, tmp_path_factory) -> Path:
    """A copy of the tiny world, split and stamped here, so the CLI runs never split the shared one again."""
    from ubp.pipeline import ensure_split

    copy = tmp_path_factory.mktemp("cluster") / "world"
    shutil.copytree(tiny_world, copy)
    ensure_split(copy)
    return copy


@pytest.fixture(scope="module")
def bucket_world(world: Path) -> str:
    """The tiny world's input window copied into a fresh bucket."""
    from pyarrow import fs

    bucket = f"ubp-test-{uuid.uuid4().hex[:12]}"
    s3, _ = store.filesystem(f"s3://{bucket}")
    s3.create_dir(bucket)
    fs.copy_files(str(world / "input"), f"{bucket}/world/input",
                  source_filesystem=fs.LocalFileSystem(), destination_filesystem=s3)
    return f"s3://{bucket}/world"


@pytest.fixture(scope="module")
def local_entry(world: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("local") / "entry"
    _ubp("embed", "--data-dir", str(world), "--blocks", BLOCKS, "--out", str(out), "--engine", "local",
         env={k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}, cwd=world)
    return out


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


def test_bucket_world_on_the_cluster_gives_the_local_entry(cluster, bucket_world, local_entry, tmp_path):
    out = tmp_path / "entry"
    _ubp("embed", "--data-dir", bucket_world, "--blocks", BLOCKS, "--out", str(out), "--engine", "ray",
         env=cluster, cwd=tmp_path)
    _same_entry(local_entry, out)
    s3, path = store.filesystem(bucket_world)
    from pyarrow import fs

    leftovers = s3.get_file_info(fs.FileSelector(f"{path}/input/.ubp-scratch", allow_not_found=True, recursive=True))
    assert not [f for f in leftovers if f.type == fs.FileType.File]  # the tasks' tables were removed


def test_relative_data_dir_on_the_cluster_gives_the_local_entry(cluster, world, local_entry, tmp_path):
    out = tmp_path / "entry"
    _ubp("embed", "--data-dir", world.name, "--blocks", BLOCKS, "--out", str(out), "--engine", "ray",
         env=cluster, cwd=world.parent)  # the worker node's cwd has no `world` in it
    _same_entry(local_entry, out)
