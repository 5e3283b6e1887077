"""Where data lives: a local folder or an object store, named by one string.

A location is either an absolute local path or a URI (`s3://bucket/key`, `gs://bucket/key`).
`resolve` turns what a user typed into one: a relative path becomes absolute once, on the
driver, so a task on another node (another working directory) reads the same files; a URI is
kept as it is (never through `Path`, which would turn `s3://` into `s3:/`). Files in an object
store are read and written through pyarrow's filesystems (credentials and endpoint from the
usual AWS_* / GOOGLE_* environment), and polars scans them with `storage_options` derived from
the same environment. A write to an object store is one PUT: readers see the old object or the
new one, as the atomic local writes of `ubp.io` guarantee for files.
"""

from __future__ import annotations

import io
import json
import os
import posixpath
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np
import polars as pl

from ubp.errors import UsageError

SCHEMES = ("s3", "gs", "gcs")


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


def parent(location: str) -> str:
    return posixpath.dirname(location.rstrip("/")) if is_uri(location) else os.path.dirname(location)


def local_path(location: str | Path) -> Path:
    """The local `Path` of a location; a URI here is a usage error naming what needs a local folder."""
    if is_uri(location):
        raise UsageError(f"{location}: this step needs a local folder, not an object-store URI")
    return Path(location)


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
    buffer = io.BytesIO()
    frame.write_parquet(buffer, statistics=True)
    write_bytes(location, buffer.getvalue())


def delete_dir(location: str | Path) -> None:
    """Remove a folder (or key prefix) and everything under it; absent is fine."""
    from pyarrow import fs as pafs

    fs, path = filesystem(location)
    if fs.get_file_info(path).type != pafs.FileType.NotFound:
        fs.delete_dir(path)
