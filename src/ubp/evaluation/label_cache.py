"""Task label tables cached on disk, keyed by the contents of the files they are built from.

The key of a task is a digest of the bytes of both target windows and of the task's own files
(target ids, popularity, active clients), the task's name, the package version and the source of
the label code (`ubp.fingerprint`), never a path: a moved or copied data dir hits the cache, a changed target
file misses it. An unwritable cache folder only costs the rebuild.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from ubp.evaluation.labels import WINDOWS, TaskTable, build_task_tables, target_path, task_inputs
from ubp.fingerprint import code_version, digest, file_digest
from ubp.io import atomic_file

log = logging.getLogger(__name__)

LABEL_RULES = 1  # raise when the meaning of a cached table changes


def task_key(task: str, data_dir: Path) -> str:
    """The cache key of one task's table: everything the table depends on, by content."""
    windows = [target_path(data_dir, w) for w in WINDOWS]
    inputs = [p for p in (*windows, *task_inputs(data_dir, task))]
    return digest({
        "task": task,
        "inputs": [file_digest(p) if p.is_file() else None for p in inputs],
        "code": code_version("ubp.evaluation.labels"),
        "label_rules": LABEL_RULES,
    }, size=12)


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
    paths = {t: cache_dir / f"{t}-{task_key(t, data_dir)}.npz" for t in tasks}
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
