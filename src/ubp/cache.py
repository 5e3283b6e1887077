"""The content-keyed cache: fitted blocks and embedding windows, shared by every run on this machine.

An entry lives in `ROOT/<kind>/<name>-<key>/`, the key a digest of everything its result depends
on (inputs' content, options, code version; see `ubp.fingerprint`), and `meta.json` says what made
it. The root is `--cache`, else `$UBP_CACHE_DIR`, else `$XDG_CACHE_HOME/ubp` (`~/.cache/ubp`). A hit
touches `meta.json`, so `clear(older_than=...)` frees what has not been used for that long.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from ubp.io import write_json

META = "meta.json"


def cache_root(explicit: Path | str | None = None) -> Path:
    """Where the cache lives (see module docstring)."""
    if explicit is not None:
        return Path(explicit)
    if os.environ.get("UBP_CACHE_DIR"):
        return Path(os.environ["UBP_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "ubp"


def write_meta(folder: Path, kind: str, made_by: dict) -> None:
    """Record what made a cache entry (its inputs, options, code version) and when."""
    write_json(folder / META, {"kind": kind, "created": _now(), "made_by": made_by})


def touch(folder: Path) -> None:
    """Mark an entry as used now (a hit)."""
    meta = folder / META
    if meta.is_file():
        os.utime(meta)


@dataclass(frozen=True)
class CacheEntry:
    path: Path
    kind: str
    size: int  # bytes
    last_used: float  # seconds since the epoch
    made_by: dict

    def describe(self) -> str:
        used = datetime.fromtimestamp(self.last_used, timezone.utc).strftime("%Y-%m-%d %H:%M")
        what = ", ".join(f"{k}={v}" for k, v in self.made_by.items() if k in SHOWN)
        return f"{_size(self.size):>9}  {used}  {self.kind:<7} {self.path.name}  {what}"


SHOWN = ("block", "options", "seed", "code", "data_dir", "as_of", "n_clients")


def entries(root: Path) -> list[CacheEntry]:
    """Every entry under `root`, oldest use first."""
    import json

    found = []
    for meta in Path(root).glob(f"*/*/{META}"):
        folder = meta.parent
        info = json.loads(meta.read_text())
        size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
        found.append(CacheEntry(folder, info.get("kind", folder.parent.name), size, meta.stat().st_mtime,
                                info.get("made_by", {})))
    return sorted(found, key=lambda e: e.last_used)


def clear(root: Path, older_than_s: float | None = None) -> list[CacheEntry]:
    """Remove entries not used for `older_than_s` seconds (all when None); returns those removed.

    Unfinished folders (a killed fit's scratch, with no `meta.json`) go too when clearing all."""
    now = time.time()
    removed = [e for e in entries(root) if older_than_s is None or now - e.last_used > older_than_s]
    for e in removed:
        shutil.rmtree(e.path, ignore_errors=True)
    if older_than_s is None:
        for kind in Path(root).glob("*"):
            for folder in kind.glob("*"):
                if folder.is_dir() and not (folder / META).is_file():
                    shutil.rmtree(folder, ignore_errors=True)
    return removed


def parse_age(text: str) -> float:
    """'90s', '30m', '12h', '7d' → seconds."""
    from ubp.errors import UsageError

    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    try:
        return float(text[:-1]) * units[text[-1]]
    except (KeyError, ValueError, IndexError):
        raise UsageError(f"--older-than {text!r}: use a number and a unit s, m, h or d (e.g. 7d)") from None


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"
