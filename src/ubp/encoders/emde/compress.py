"""Compression of wide sketches to a few standardized columns, fitted once in `fit`.

A truncated SVD of log1p sketches (log1p tames heavy visitors whose counts would otherwise set
every direction). When the fit set is smaller than `out_dim`, the missing components are zero,
so the block's width never depends on the data; those columns are constant zeros.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from sklearn.decomposition import TruncatedSVD

from ubp.standardize import Standardizer

# 2 power iterations keep nearly all the variance that sklearn's default 5 capture on sketches
# (benchmarks/README.md, "emde"), in half the matrix products.
SVD_POWER_ITERATIONS = 2


@dataclass(frozen=True)
class SketchCompressor:
    components: np.ndarray  # (out_dim, sketch_width) float32
    mean: np.ndarray  # (out_dim,) float32
    scale: np.ndarray  # (out_dim,) float32, 1 where a column is constant

    @classmethod
    def fit(cls, sketches: sp.csr_matrix, out_dim: int, seed: int) -> "SketchCompressor":
        x = sketches.log1p()
        k = min(out_dim, x.shape[0], x.shape[1] - 1)
        components = np.zeros((out_dim, x.shape[1]), np.float32)
        if k > 0 and x.nnz:
            svd = TruncatedSVD(n_components=k, n_iter=SVD_POWER_ITERATIONS, random_state=seed).fit(x)
            components[:k] = svd.components_
        scaler = Standardizer.fit(np.asarray(x @ components.T), floor=1e-6, dtype=np.float32)
        return cls(components, scaler.mean, scaler.std)

    def project(self, sketches: sp.csr_matrix) -> np.ndarray:
        """Unstandardized (n, out_dim) projection; a user without events projects to 0."""
        return np.asarray(sketches.log1p() @ self.components.T, dtype=np.float32)

    def standardize(self, projected: np.ndarray) -> np.ndarray:
        return Standardizer(self.mean, self.scale).transform(projected)
