"""A block's fitted normalisation: column scaling (or row L2), optional PCA, weight.

Fitted once on the profile's fit clients and kept as plain arrays, so the same float64 arithmetic
maps any later rows: a saved profile applied to the fit-time window gives the fit-time entry bit
for bit, and a client's row never depends on which other clients are embedded with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ubp.chunks import spans
from ubp.io import atomic_file
from ubp.standardize import Standardizer

PCA_FIT_ROWS = 200_000  # rows a block's PCA is fitted on (a 1,127-column block: 1.7 GiB of float64)
CLIP = 5.0


@dataclass(frozen=True)
class Normaliser:
    """`apply(chunk)`: scale (standardize or principal / l2 / centre_l2: column means off, then l2 /
    none) → project on the PCA basis / rms → × weight. `principal` is `standardize` followed by a
    rotation onto every principal axis when no `pca` truncates them: a block whose standardized
    columns are a few shared directions in many copies reaches the downstream network as those
    directions, one per column."""

    method: str
    weight: float
    in_dim: int
    mean: np.ndarray | None = None  # standardize: column means and deviations (float64); centre_l2: means
    std: np.ndarray | None = None
    pca_mean: np.ndarray | None = None  # PCA: centre (in_dim,), basis (k, in_dim), overall rms of the projection
    components: np.ndarray | None = None
    rms: float = 1.0

    @property
    def out_dim(self) -> int:
        return self.in_dim if self.components is None else len(self.components)

    def scale(self, c: np.ndarray) -> np.ndarray:
        """The scaling step alone on a float64 row chunk."""
        if self.method in ("standardize", "principal"):
            return np.clip((c - self.mean) / self.std, -CLIP, CLIP)
        if self.method in ("l2", "centre_l2"):
            c = c - self.mean if self.method == "centre_l2" else c  # without the rows' common part
            norms = np.linalg.norm(c, axis=1, keepdims=True)
            return c / np.where(norms > 1e-12, norms, 1.0) * np.sqrt(self.in_dim)
        return c

    def apply(self, c: np.ndarray) -> np.ndarray:
        """Scaled, projected and weighted float64 rows of a float64 chunk."""
        x = self.scale(c)
        if self.components is not None:
            x = (x - self.pca_mean) @ self.components.T / self.rms
        return x * self.weight

    def apply_into(self, matrix: np.ndarray, out: np.ndarray) -> None:
        """Every row of `matrix`, a chunk at a time, written into the float32 `out` (may alias `matrix`)."""
        for r in spans(len(matrix)):
            out[r] = self.apply(matrix[r].astype(np.float64))

    def save(self, path: Path) -> None:
        arrays = {k: v for k, v in self.__dict__.items() if isinstance(v, np.ndarray)}
        scalars = {"method": self.method, "weight": self.weight, "in_dim": self.in_dim, "rms": self.rms}
        with atomic_file(path) as f:
            np.savez(f, **arrays, **{f"_{k}": np.asarray(v) for k, v in scalars.items()})

    @classmethod
    def load(cls, path: Path) -> "Normaliser":
        with np.load(path, allow_pickle=False) as npz:
            data = {k: npz[k] for k in npz.files}
        return cls(method=str(data.pop("_method")), weight=float(data.pop("_weight")),
                   in_dim=int(data.pop("_in_dim")), rms=float(data.pop("_rms")), **data)


def fit_normaliser(matrix: np.ndarray, method: str, weight: float, pca: int | None, seed: int) -> tuple[Normaliser, dict]:
    """Statistics over every row of `matrix` (summed a chunk at a time in float64: memory stays one
    chunk); PCA on at most `PCA_FIT_ROWS` seeded rows (a million-row block would otherwise need a
    float64 copy of itself). Returns the normaliser and what to report about it."""
    n, d = matrix.shape
    mean = std = None
    if method in ("standardize", "principal", "centre_l2"):
        standardizer = Standardizer.fit(matrix, clip=CLIP, floor=1e-12)
        mean, std = standardizer.mean, None if method == "centre_l2" else standardizer.std
    scaler = Normaliser(method, 1.0, d, mean, std)
    info: dict = {"normalise": method, "in_dim": int(d)}
    every_axis = pca is None or pca >= d
    if every_axis and method != "principal":
        info["out_dim"] = int(d)
        return Normaliser(method, weight, d, mean, std), info
    rows = np.arange(n)
    if n > PCA_FIT_ROWS:
        rows = np.sort(np.random.default_rng(seed).choice(n, PCA_FIT_ROWS, replace=False))
    sample = scaler.scale(matrix[rows].astype(np.float64))
    if every_axis:
        (centre, components), explained = _principal_axes(sample), 1.0
    else:
        from sklearn.decomposition import PCA

        fitted = PCA(n_components=pca, random_state=seed, svd_solver="randomized").fit(sample)
        centre, components = fitted.mean_.copy(), fitted.components_.copy()
        explained = float(fitted.explained_variance_ratio_.sum())
    k = len(components)
    projected = (sample - centre) @ components.T
    rms = max(float(np.sqrt((projected**2).sum(axis=1).mean() / k)), 1e-12)
    info.update(pca_explained_variance=round(explained, 4), pca_fit_rows=int(len(rows)), out_dim=int(k))
    return Normaliser(method, weight, d, mean, std, centre, components, rms), info


def _principal_axes(sample: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(centre, every principal axis as a row by decreasing variance): the eigenvectors of the
    sample's covariance, so there are as many as columns even with fewer rows; each axis's sign is
    fixed (its largest entry positive) so one sample gives one rotation."""
    centre = sample.mean(axis=0)
    centred = sample - centre
    variances, vectors = np.linalg.eigh(centred.T @ centred)
    axes = vectors[:, np.argsort(-variances, kind="stable")].T
    signs = np.sign(axes[np.arange(len(axes)), np.abs(axes).argmax(axis=1)])
    return centre, axes * np.where(signs == 0, 1.0, signs)[:, None]
