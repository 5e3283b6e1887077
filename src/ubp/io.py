"""Atomic files and folders: a reader sees the old result or the new one, never a half-written one.

Every writer in ubp goes through these helpers. A file is written to a temporary name in the same
folder and renamed over the target (`os.replace` is atomic on POSIX within one filesystem). A folder
is built under a temporary name and swapped in with renames only: the old folder is moved aside
first, so at every instant either the old or the new folder stands at the path.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import numpy as np


@contextmanager
def atomic_file(path: Path | str, mode: str = "wb") -> Iterator[IO[Any]]:
    """Yield an open temporary file that replaces `path` once the block finishes without error."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """Yield a temporary path for a library that writes by name (torch.save, parquet); renamed to `path` after."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text(path: Path | str, text: str) -> None:
    with atomic_file(path, "w") as f:
        f.write(text)


def write_bytes(path: Path | str, data: bytes) -> None:
    with atomic_file(path, "wb") as f:
        f.write(data)


def json_text(obj: Any) -> str:
    """The one JSON layout ubp writes (sorted keys, so equal content gives equal bytes)."""
    return json.dumps(obj, indent=2, sort_keys=True) + "\n"


def write_json(path: Path | str, obj: Any) -> None:
    write_text(path, json_text(obj))


def save_npy(path: Path | str, array: np.ndarray) -> None:
    with atomic_file(path, "wb") as f:
        np.save(f, array)


def write_with(path: Path | str, writer: Callable[[Path], None]) -> None:
    """Call `writer(tmp_path)` and rename the result over `path` (for writers that take a file name)."""
    with atomic_path(path) as tmp:
        writer(tmp)


def swap_dir(tmp: Path | str, path: Path | str) -> None:
    """Replace folder `path` by the finished folder `tmp` with renames only (old moved aside, then removed)."""
    tmp, path = Path(tmp), Path(path)
    old = path.with_name(f".{path.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if path.exists():
        os.replace(path, old)
    os.replace(tmp, path)
    shutil.rmtree(old, ignore_errors=True)


@contextmanager
def atomic_dir(path: Path | str) -> Iterator[Path]:
    """Yield an empty temporary folder that is swapped in at `path` once the block finishes without error."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    swap_dir(tmp, path)
