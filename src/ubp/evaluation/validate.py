"""Checks an entry against the challenge's format rules (docs/protocol.md §3).

Every problem is one line naming the file, so `ubp validate` can print them all at once
instead of stopping at the first, and `ubp evaluate` can refuse a bad entry with the same words.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ubp.chunks import spans
from ubp.entry import MAX_WIDTH
from ubp.data.raw import read_relevant_clients
from ubp.errors import input_error

IDS = "client_ids.npy"
EMBEDDINGS = "embeddings.npy"


def _load(path: Path) -> tuple[np.ndarray | None, str | None]:
    if not path.is_file():
        return None, f"{path}: missing; an entry holds {IDS} and {EMBEDDINGS}"
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False), None
    except (ValueError, OSError, EOFError) as e:
        return None, f"{path}: cannot be read as a .npy array ({e})"


def id_problems(path: Path, ids: np.ndarray) -> list[str]:
    if ids.ndim != 1:
        return [f"{path}: must be 1-D, got shape {ids.shape}"]
    if ids.dtype != np.int64:
        return [f"{path}: dtype is {ids.dtype}, must be int64"]
    uniq, counts = np.unique(ids, return_counts=True)
    if (counts > 1).any():
        dup = uniq[counts > 1]
        return [f"{path}: {len(dup)} client ids appear more than once (example: {int(dup[0])})"]
    return []


def embedding_problems(path: Path, emb: np.ndarray) -> list[str]:
    if emb.ndim != 2:
        return [f"{path}: must be 2-D (clients × width), got shape {emb.shape}"]
    problems = []
    if emb.dtype != np.float16:
        problems.append(f"{path}: dtype is {emb.dtype}, must be float16")
    if emb.shape[1] > MAX_WIDTH:
        problems.append(f"{path}: width {emb.shape[1]} exceeds {MAX_WIDTH}")
    if emb.dtype.kind == "f":
        for rows in spans(len(emb)):  # bounded memory on a million rows
            bad_rows = ~np.isfinite(emb[rows]).all(axis=1)
            if bad_rows.any():
                row = rows.start + int(np.flatnonzero(bad_rows)[0])
                problems.append(f"{path}: contains NaN or Inf (first at row {row})")
                break
    return problems


def relevant_problems(ids_path: Path, ids: np.ndarray, relevant_path: Path) -> list[str]:
    """The ids must be exactly the relevant clients, in any order."""
    relevant, problem = _load(relevant_path)
    if problem:
        return [problem]
    if relevant.dtype.kind == "U":  # a string-id log: the entry carries the hashed ids
        relevant = read_relevant_clients(relevant_path)
    missing = np.setdiff1d(relevant, ids)
    extra = np.setdiff1d(ids, relevant)
    if len(missing) == 0 and len(extra) == 0:
        return []
    parts = []
    if len(missing):
        parts.append(f"{len(missing)} relevant clients missing (example: {int(missing[0])})")
    if len(extra):
        parts.append(f"{len(extra)} ids not in {relevant_path.name} (example: {int(extra[0])})")
    return [f"{ids_path}: not a permutation of {relevant_path}: " + "; ".join(parts)]


def validate_entry(data_dir: Path | None, entry_dir: Path, relevant_check: bool = True) -> list[str]:
    """All problems of an entry, one line each; empty when it is valid."""
    entry_dir = Path(entry_dir)
    ids_path, emb_path = entry_dir / IDS, entry_dir / EMBEDDINGS
    ids, ids_problem = _load(ids_path)
    emb, emb_problem = _load(emb_path)
    problems = [p for p in (ids_problem, emb_problem) if p]
    if ids is not None:
        problems += id_problems(ids_path, ids)
    if emb is not None:
        problems += embedding_problems(emb_path, emb)
    if ids is not None and emb is not None and ids.ndim >= 1 and emb.ndim >= 1 and len(ids) != len(emb):
        problems.append(f"{entry_dir}: {len(ids)} client ids but {len(emb)} embedding rows")
    if relevant_check and ids is not None and ids.ndim == 1:
        if data_dir is None:
            problems.append("the relevant-clients check needs a data directory")
        else:
            problems += relevant_problems(ids_path, ids, Path(data_dir) / "input" / "relevant_clients.npy")
    return problems


def load_valid_entry(entry_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """(client_ids int64, embeddings float16) of an entry that passes every format check."""
    problems = validate_entry(None, entry_dir, relevant_check=False)
    if problems:
        raise input_error(entry_dir, "not a valid entry: " + " | ".join(problems))
    entry_dir = Path(entry_dir)
    return np.load(entry_dir / IDS), np.load(entry_dir / EMBEDDINGS)
