"""Task label tables cached on disk, keyed by the contents of the files they are built from.

The key of a task is a digest of the bytes of both target windows and of the task's own files
(target ids, popularity, active clients), the task's name, the package version and the version of
the label rules below, never a path: a moved or copied data dir hits the cache, a changed target
file misses it. An unwritable cache folder only costs the rebuild.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import numpy as np

import ubp
from ubp.evaluation.labels import WINDOWS, TaskTable, build_task_tables, target_path, task_inputs
from ubp.io import atomic_file

log = logging.getLogger(__name__)

LABEL_RULES = 1  # raise when the meaning of a cached table changes
DIGEST_BLOCK = 1 << 22


def file_digest(path: Path) -> str:
    """sha256 of a file's bytes; a missing file digests to a marker, so its absence is part of the key."""
    path = Path(path)
    if not path.is_file():
        return "missing"
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(DIGEST_BLOCK), b""):
            h.update(block)
    return h.hexdigest()


def task_key(task: str, window_digests: list[str], data_dir: Path) -> str:
    """The cache key of one task's table: everything the table depends on, by content."""
    parts = {
        "task": task,
        "windows": window_digests,
        "inputs": [file_digest(p) for p in task_inputs(data_dir, task)],
        "package_version": ubp.__version__,
        "label_rules": LABEL_RULES,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:24]


def save_table(path: Path, table: TaskTable) -> None:
    arrays = {f"{w}_{part}": a for w in WINDOWS for part, a in zip(("clients", "labels"), table.positives[w])}
    if table.scored_ids is not None:
        arrays["scored_ids"] = table.scored_ids
    if table.popularity is not None:
        arrays["popularity"] = table.popularity
    meta = {"task": table.task, "n_labels": table.n_labels, "no_buy": table.no_buy}
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    with atomic_file(path) as f:
        np.savez(f, **arrays)


def load_table(path: Path) -> TaskTable:
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(z["meta"].tobytes().decode())
        return TaskTable(
            task=meta["task"],
            n_labels=int(meta["n_labels"]),
            no_buy=bool(meta["no_buy"]),
            positives={w: (z[f"{w}_clients"], z[f"{w}_labels"]) for w in WINDOWS},
            scored_ids=z["scored_ids"] if "scored_ids" in z else None,
            popularity=z["popularity"] if "popularity" in z else None,
        )


def cached_task_tables(data_dir: Path, tasks: tuple[str, ...], cache_dir: Path | None) -> dict[str, TaskTable]:
    """The tables of `tasks`: read from `cache_dir` where their key is there, else built (once) and stored."""
    if cache_dir is None:
        return build_task_tables(data_dir, tasks)
    data_dir, cache_dir = Path(data_dir), Path(cache_dir)
    window_digests = [file_digest(target_path(data_dir, w)) for w in WINDOWS]
    paths = {t: cache_dir / f"{t}-{task_key(t, window_digests, data_dir)}.npz" for t in tasks}
    tables: dict[str, TaskTable] = {}
    for task, path in paths.items():
        if path.is_file():
            try:
                tables[task] = load_table(path)
            except (OSError, ValueError, KeyError) as e:
                log.warning("warning: %s: unreadable cached labels (%s); rebuilding them", path, e)
    missing = tuple(t for t in tasks if t not in tables)
    if missing:
        built = build_task_tables(data_dir, missing)
        for task in missing:
            try:
                save_table(paths[task], built[task])
            except OSError as e:
                log.warning("warning: cannot cache labels in %s (%s); they are rebuilt next time", cache_dir, e)
        tables.update(built)
    return {t: tables[t] for t in tasks}
