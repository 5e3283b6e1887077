"""A data-adaptive locality-sensitive hash: independent partitions of item space into buckets.

Each partition projects item vectors on `bits` orthonormal random directions and cuts each at
the median of the fitted items, so every bit splits the items in half wherever they lie (plain
random hyperplanes through the origin would leave most buckets empty on anisotropic vectors).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class BucketHash:
    projections: np.ndarray  # (n_partitions, dim, bits) float32
    thresholds: np.ndarray  # (n_partitions, bits) float32

    @classmethod
    def fit(cls, vectors: np.ndarray, n_partitions: int, n_buckets: int, seed: int) -> "BucketHash":
        bits = int(n_buckets).bit_length() - 1
        if n_buckets < 2 or 1 << bits != n_buckets:
            raise ValueError(f"n_buckets must be a power of two ≥ 2, got {n_buckets}")
        dim = vectors.shape[1]
        if bits > dim:
            raise ValueError(f"n_buckets={n_buckets} needs {bits} bits but item vectors have only {dim} dimensions")
        rng = np.random.default_rng(seed)
        projections = np.stack(
            [np.linalg.qr(rng.standard_normal((dim, bits)))[0] for _ in range(n_partitions)]
        ).astype(np.float32)
        if len(vectors):
            thresholds = np.stack([np.median(vectors @ p, axis=0) for p in projections])
        else:
            thresholds = np.zeros((n_partitions, bits))
        return cls(projections, thresholds.astype(np.float32))

    @property
    def n_buckets(self) -> int:
        return 1 << self.projections.shape[2]

    def codes(self, vectors: np.ndarray) -> np.ndarray:
        """(n, n_partitions) bucket of each vector in each partition."""
        weights = (1 << np.arange(self.projections.shape[2])).astype(np.uint16)
        out = np.empty((len(vectors), len(self.projections)), np.uint16)
        for p, (proj, cut) in enumerate(zip(self.projections, self.thresholds)):
            out[:, p] = ((vectors @ proj) > cut).astype(np.uint16) @ weights
        return out
