"""Content fingerprints: what a cached result depends on, never where it lies.

A file is identified by its size and a BLAKE2b hash of its bytes (not its path, not its
modification time), so a moved or renamed data folder keeps its fingerprint and a rewritten file
changes it. Code is identified by the package version and a hash of the source of a module and
every `ubp` module it imports, directly or not: changing an encoder's code refits that encoder,
not the others.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import json
from pathlib import Path
from typing import Any

import ubp
from ubp import store

READ_BYTES = 1 << 22


def file_digest(path: Path | str) -> str:
    """`<size>:<blake2b of the bytes>` of one file.

    Hashed again whenever the file's identity or size or modification time differs from an
    earlier call in this process (one `ubp run` asks for the same raw files up to three times);
    never remembered across processes."""
    st = Path(path).stat()
    return _hashed(str(Path(path).resolve()), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=4096)
def _hashed(path: str, dev: int, ino: int, size: int, mtime_ns: int) -> str:
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(READ_BYTES), b""):
            h.update(chunk)
    return f"{size}:{h.hexdigest()}"


def files_fingerprint(root: Path | str, names: list[str]) -> dict[str, str | None]:
    """Digest of each named file under `root` (None for an absent one), keyed by its relative name;
    `root` may be an object-store URI (`ubp.store`)."""
    if store.is_uri(root):
        return {n: _stored_digest(store.join(root, n)) if store.is_file(store.join(root, n)) else None for n in names}
    root = Path(root)
    return {n: file_digest(root / n) if (root / n).is_file() else None for n in names}


def _stored_digest(location: str) -> str:
    """`file_digest` of an object in a store, read in blocks through its filesystem."""
    fs, path = store.filesystem(location)
    h, size = hashlib.blake2b(digest_size=16), 0
    with fs.open_input_stream(path) as f:
        for chunk in iter(lambda: f.read(READ_BYTES), b""):
            h.update(chunk)
            size += len(chunk)
    return f"{size}:{h.hexdigest()}"


def digest(obj: Any, size: int = 12) -> str:
    """A short hex key of any JSON-able object (keys sorted: dict order does not matter)."""
    payload = json.dumps(obj, sort_keys=True, default=str).encode()
    return hashlib.blake2b(payload, digest_size=size).hexdigest()


@functools.cache
def code_version(module: str) -> str:
    """Package version + hash of the source of `module` and its transitive `ubp` imports."""
    sources: dict[str, bytes] = {}
    todo = [module]
    while todo:
        name = todo.pop()
        if name in sources:
            continue
        path = _source(name)
        if path is None:  # a name imported from a module (a class, a function), not a module
            continue
        text = path.read_bytes()
        sources[name] = text
        todo += _ubp_imports(text, name, is_package=path.name == "__init__.py")
    h = hashlib.blake2b(digest_size=8)
    for name in sorted(sources):
        h.update(name.encode() + b"\0" + sources[name] + b"\0")
    return f"{ubp.__version__}+{h.hexdigest()}"


def _source(module: str) -> Path | None:
    """The source file of a `ubp` module, found without importing it."""
    base = Path(ubp.__file__).parent.joinpath(*module.split(".")[1:])
    for path in (base / "__init__.py", base.with_suffix(".py")):
        if path.is_file():
            return path
    return None


def _ubp_imports(source: bytes, module: str, is_package: bool) -> list[str]:
    """Every `ubp` module `source` imports anywhere (top level or inside a function)."""
    package = module if is_package else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            found.append(base)
            found += [f"{base}.{a.name}" for a in node.names]  # `from pkg import module`
    out = []
    for name in found:
        if name == "ubp" or name.startswith("ubp."):
            parts = name.split(".")
            out += [".".join(parts[: i + 1]) for i in range(1, len(parts))]  # parent packages' __init__ too
    return out
