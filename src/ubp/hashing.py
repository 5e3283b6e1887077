"""A fixed, version-independent hash of client ids.

Used for shard assignment and for the behaviour-free row order of every entry `ubp` writes;
polars' and Python's own hashes may change between versions, this one never does.
"""

from __future__ import annotations

import numpy as np


def stable_hash(ids: np.ndarray, salt: int = 0) -> np.ndarray:
    """splitmix64 of int64 ids (plus a salt), as uint64."""
    with np.errstate(over="ignore"):
        z = np.asarray(ids).astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15) * np.uint64(salt + 1)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def hash_order(ids: np.ndarray, salt: int = 0) -> np.ndarray:
    """Permutation that sorts ids by their hash: an order unrelated to behaviour."""
    h = stable_hash(ids, salt)
    return np.lexsort((np.asarray(ids), h))


def order_fingerprint(ids: np.ndarray) -> str:
    """Short digest of a row order, so reports only compare scores of like orders."""
    import hashlib

    return hashlib.sha1(np.ascontiguousarray(ids, dtype=np.int64).tobytes()).hexdigest()[:12]
