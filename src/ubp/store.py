"""Where data lives: a local folder or an object store, named by one string.

A location is either an absolute local path or a URI (`s3://bucket/key`, `gs://bucket/key`).
`resolve` turns what a user typed into one: a relative path becomes absolute once, on the
driver, so a task on another node (another working directory) reads the same files; a URI is
kept as it is (never through `Path`, which would turn `s3://` into `s3:/`). Files in an object
store are read and written through pyarrow's filesystems (credentials and endpoint from the
usual AWS_* / GOOGLE_* environment), and polars scans them with `storage_options` derived from
the same environment. A write to an object store is one PUT (or one multipart upload, which
appears whole when it completes): readers see the old object or the new one, as the atomic local
writes of `ubp.io` guarantee for files. A store cannot rename, so a stage that writes many objects
writes its manifest or stamp last (`rebuilt_dir`, `staged`): a stage killed half-way has none and
is never taken as done.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import posixpath
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np
import polars as pl

from ubp.errors import UsageError

SCHEMES = ("s3", "gs", "gcs")
STAGE = ".stage.tmp"


def is_uri(location: str | Path) -> bool:
    """Whether `location` names an object in a store (`s3://…`, `gs://…`) rather than a local path."""
    return isinstance(location, str) and "://" in location and not location.startswith("file://")


def resolve(location: str | Path) -> str:
    """The location as a URI or an absolute local path (relative paths resolved against the cwd here)."""
    text = str(location) if isinstance(location, Path) else location
    if is_uri(text):
        scheme = urlparse(text).scheme
        if scheme not in SCHEMES:
            raise UsageError(f"{text}: unsupported storage scheme {scheme!r}; use a local path or one of {', '.join(SCHEMES)}")
        return text.rstrip("/")
    if text.startswith("file://"):
        text = text[len("file://"):]
    return os.path.abspath(os.path.expanduser(text))


def join(base: str | Path, *parts: str) -> str:
    """`base/part/…` for a URI or a local path alike."""
    base = base if is_uri(base) else str(base)
    return posixpath.join(base, *parts) if is_uri(base) else os.path.join(base, *parts)


def basename(location: str | Path) -> str:
    return posixpath.basename(str(location).rstrip("/")) if is_uri(location) else os.path.basename(str(location))


def parent(location: str) -> str:
    return posixpath.dirname(location.rstrip("/")) if is_uri(location) else os.path.dirname(location)


def filesystem(location: str | Path):
    """(pyarrow filesystem, path inside it) of a location."""
    from pyarrow import fs

    if not is_uri(location):
        return fs.LocalFileSystem(), str(location)
    scheme = urlparse(str(location)).scheme
    if scheme == "s3":
        return _s3(), str(location)[len("s3://"):]
    return fs.FileSystem.from_uri(str(location))


def _s3():
    """S3 filesystem configured from the environment, including a non-AWS endpoint (`AWS_ENDPOINT_URL`)."""
    from pyarrow import fs

    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if not endpoint:
        return fs.S3FileSystem(region=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION"))
    parsed = urlparse(endpoint)
    return fs.S3FileSystem(
        endpoint_override=parsed.netloc or parsed.path,
        scheme=parsed.scheme or "https",
        region=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1",
        allow_bucket_creation=True,
    )


def storage_options(location: str | Path | Sequence[str]) -> dict[str, str] | None:
    """polars' `storage_options` for a location: None locally; for S3 the endpoint, region and keys
    of the environment (polars' own defaults ignore a custom endpoint's plain-http scheme)."""
    first = location[0] if isinstance(location, (list, tuple)) and location else location
    if not is_uri(first) or urlparse(str(first)).scheme != "s3":
        return None
    options = {}
    names = {"aws_access_key_id": "AWS_ACCESS_KEY_ID", "aws_secret_access_key": "AWS_SECRET_ACCESS_KEY",
             "aws_session_token": "AWS_SESSION_TOKEN"}
    for key, env in names.items():
        if os.environ.get(env):
            options[key] = os.environ[env]
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        options["aws_endpoint_url"] = endpoint
        options["aws_region"] = region or "us-east-1"
        options["aws_allow_http"] = str(endpoint.startswith("http://")).lower()
        options["aws_virtual_hosted_style_request"] = "false"
    elif region:
        options["aws_region"] = region
    return options or None


def scan_parquet(locations: str | Sequence[str]) -> pl.LazyFrame:
    """A lazy scan of one or several parquet files, local or in a store."""
    paths = [locations] if isinstance(locations, str) else list(locations)
    return pl.scan_parquet(paths, storage_options=storage_options(paths))


def read_parquet(location: str) -> pl.DataFrame:
    return scan_parquet(location).collect()


def read_bytes(location: str | Path) -> bytes:
    fs, path = filesystem(location)
    with fs.open_input_stream(path) as f:
        return f.read()


def read_text(location: str | Path) -> str:
    return read_bytes(location).decode()


def read_json(location: str | Path) -> Any:
    return json.loads(read_bytes(location))


def load_npy(location: str | Path) -> np.ndarray:
    return np.load(io.BytesIO(read_bytes(location)), allow_pickle=False)


def is_file(location: str | Path) -> bool:
    from pyarrow import fs as pafs

    fs, path = filesystem(location)
    return fs.get_file_info(path).type == pafs.FileType.File


def write_bytes(location: str | Path, data: bytes) -> None:
    """Write a whole object: locally through `ubp.io` (temporary name + rename), in a store as one PUT."""
    if not is_uri(location):
        from ubp import io as atomic

        atomic.write_bytes(location, data)
        return
    fs, path = filesystem(location)
    with fs.open_output_stream(path) as f:
        f.write(data)


def write_parquet(frame: pl.DataFrame, location: str | Path) -> None:
    if not is_uri(location):
        from ubp import io as atomic

        atomic.write_with(location, lambda path: frame.write_parquet(path, statistics=True))
        return
    buffer = io.BytesIO()
    frame.write_parquet(buffer, statistics=True)
    write_bytes(location, buffer.getvalue())


def size(location: str | Path) -> int:
    fs, path = filesystem(location)
    return fs.get_file_info(path).size


def is_dir(location: str | Path) -> bool:
    """Whether a folder (or, in a store, any object under the key prefix) is there."""
    from pyarrow import fs as pafs

    fs, path = filesystem(location)
    if fs.get_file_info(path).type == pafs.FileType.Directory:
        return True
    return is_uri(location) and bool(fs.get_file_info(pafs.FileSelector(path, allow_not_found=True, recursive=True)))


def list_files(location: str | Path) -> list[str]:
    """Names of every file under a folder or key prefix, relative to it and sorted (none when absent)."""
    from pyarrow import fs as pafs

    fs, path = filesystem(location)
    found = fs.get_file_info(pafs.FileSelector(path, allow_not_found=True, recursive=True))
    return sorted(posixpath.relpath(f.path, path) for f in found if f.type == pafs.FileType.File)


def parquet_rows(location: str | Path) -> int:
    """Rows of a parquet file, from its footer."""
    import pyarrow.parquet as pq

    fs, path = filesystem(location)
    with fs.open_input_file(path) as f:
        return pq.ParquetFile(f).metadata.num_rows


def save_npy(location: str | Path, array: np.ndarray) -> None:
    buffer = io.BytesIO()
    np.save(buffer, array)
    write_bytes(location, buffer.getvalue())


def write_json(location: str | Path, obj: Any) -> None:
    from ubp.io import json_text

    write_bytes(location, json_text(obj).encode())


def sink_parquet(frame: pl.LazyFrame, location: str | Path) -> None:
    """Stream a query's result into one parquet file: locally under a temporary name renamed into
    place (`ubp.io`), in a store as one multipart upload (the object appears whole when it completes)."""
    if is_uri(location):
        frame.sink_parquet(str(location), storage_options=storage_options(str(location)))
        return
    from ubp import io as atomic

    atomic.write_with(location, frame.sink_parquet)


def delete_file(location: str | Path) -> None:
    """Remove one file or object; absent is fine."""
    from pyarrow import fs as pafs

    fs, path = filesystem(location)
    if fs.get_file_info(path).type == pafs.FileType.File:
        fs.delete_file(path)


@contextlib.contextmanager
def rebuilt_dir(location: str) -> Iterator[str]:
    """A folder to build whole and put at `location`: locally a temporary folder swapped in at the
    end (`ubp.io.atomic_dir`); in a store, where nothing can be renamed, `location` itself, emptied
    first: the caller writes its manifest last, so an unfinished folder has none and is never read."""
    if not is_uri(location):
        from ubp import io as atomic

        with atomic.atomic_dir(location) as tmp:
            yield str(tmp)
        return
    delete_dir(location)
    yield location


@contextlib.contextmanager
def staged(location: str) -> Iterator[str]:
    """Where a stage writes files that belong under `location` (beside others it leaves alone):
    locally a temporary folder whose files are renamed into place once the block finishes
    without error (each rename atomic); in a store `location` itself, each object written whole
    (the stage's stamp, written after, says that it finished)."""
    if is_uri(location):
        yield location
        return
    stage = os.path.join(location, STAGE)
    shutil.rmtree(stage, ignore_errors=True)
    os.makedirs(stage)
    try:
        yield stage
        for name in list_files(stage):
            target = os.path.join(location, name)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            os.replace(os.path.join(stage, name), target)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


@contextlib.contextmanager
def local_copy(location: str | Path, names: Sequence[str]) -> Iterator[Path]:
    """A local folder holding the files `names` (those present) of `location`, for a reader that
    needs local files: the folder itself when local, else a temporary copy removed afterwards."""
    if not is_uri(location):
        yield Path(location)
        return
    from ubp import io as atomic

    with tempfile.TemporaryDirectory(prefix="ubp-store-") as tmp:
        for name in names:
            if is_file(join(location, name)):
                atomic.write_bytes(os.path.join(tmp, name), read_bytes(join(location, name)))
        yield Path(tmp)


def delete_dir(location: str | Path) -> None:
    """Remove a folder (or key prefix) and everything under it; absent is fine."""
    from pyarrow import fs as pafs

    fs, path = filesystem(location)
    if fs.get_file_info(path).type != pafs.FileType.NotFound:
        fs.delete_dir(path)
