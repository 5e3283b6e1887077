"""Row chunks: passes over matrices too big to copy whole (a million clients × a thousand columns).

`column_sum` adds the chunks' rows in order, exactly as numpy's axis-0 sum of the whole float64
matrix does (a C-ordered axis-0 reduction adds row after row), so statistics computed chunk by
chunk keep the bits of the whole-matrix computation while memory stays one chunk.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np

ROWS = 65_536  # rows per chunk: float64 temporaries and checks never hold more than this many rows


def spans(n: int, size: int | None = None) -> Iterator[slice]:
    """Consecutive slices of `size` rows (default `ROWS`, read at call time so a test can shrink it) covering 0..n."""
    size = size or ROWS
    return (slice(lo, min(lo + size, n)) for lo in range(0, n, size))


def column_sum(chunks: Iterable[np.ndarray], width: int) -> np.ndarray:
    """(width,) Σ over all rows of the float64 chunks, bit-identical to the whole matrix's `sum(axis=0)`."""
    total = None
    for chunk in chunks:
        total = np.add.reduce(chunk if total is None else np.concatenate([total[None], chunk]), axis=0)
    return np.zeros(width) if total is None else total
