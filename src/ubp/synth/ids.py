"""Distinct, scattered int64 ids, so that no downstream code can lean on contiguous id ranges."""

from __future__ import annotations

import numpy as np

_BITS = 40
_MASK = np.uint64((1 << _BITS) - 1)


def scatter_ids(index: np.ndarray, seed: int, kind: int) -> np.ndarray:
    """Map indices 0..2^40-1 to distinct ids in [0, 2^40) with a keyed bijection.

    An odd multiply-add, an xor-shift and a second odd multiply (all mod 2^40) are each invertible,
    so distinct indices give distinct ids without keeping a set of the ids already used; every
    chunk of users can therefore name its users on its own.
    """
    rng = np.random.default_rng(np.random.SeedSequence([seed, 2, kind]))
    a, c = rng.integers(0, 1 << (_BITS - 1), size=2, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
    b = rng.integers(0, 1 << _BITS, dtype=np.uint64)
    x = (np.asarray(index).astype(np.uint64) * a + b) & _MASK
    x ^= x >> np.uint64(17)
    x = (x * c) & _MASK
    return x.astype(np.int64)
