"""Column standardization: statistics learned once, z-scores applied chunk by chunk.

Two ways to learn the statistics, one result type:

- `Standardizer.fit(matrix)` when the matrix is in memory: an exact two-pass computation over row
  chunks (`ubp.chunks`), bit-identical to numpy's whole-matrix `mean` and `std` while memory stays
  one chunk;
- `RunningMoments` when rows arrive shard by shard and are not kept: count, sum and the sum of
  squared deviations per column, merged chunk into chunk with the pairwise update of Chan, Golub and
  LeVeque. Unlike a running sum of squares (Σx² − n·mean², which loses every digit when the mean is
  large against the spread), the merge never subtracts two large numbers.

Missing values (NaN) are left out of the statistics and become 0 (the mean) in `transform`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ubp.chunks import column_sum, spans

STD_FLOOR = 1e-9  # a column whose std is below this is constant: divided by 1, not blown up


class RunningMoments:
    """Per-column count, mean and sum of squared deviations (M2) over non-missing values."""

    def __init__(self, width: int) -> None:
        self.n = np.zeros(width)
        self.total = np.zeros(width)  # Σx: the mean is total / n, as a one-pass sum gives it
        self.m2 = np.zeros(width)  # Σ(x − mean)²

    def update(self, x: np.ndarray) -> None:
        """Merge a chunk of rows (NaN = missing) into the running moments."""
        ok = ~np.isnan(x)
        n_b = ok.sum(axis=0).astype(np.float64)
        x0 = np.where(ok, x, 0.0).astype(np.float64)
        total_b = x0.sum(axis=0)
        mean_b = total_b / np.maximum(n_b, 1.0)
        dev = np.where(ok, x0 - mean_b, 0.0)
        m2_b = np.square(dev, out=dev).sum(axis=0)
        n = self.n + n_b
        delta = mean_b - self.total / np.maximum(self.n, 1.0)
        self.m2 += m2_b + np.square(delta) * self.n * n_b / np.maximum(n, 1.0)
        self.total += total_b
        self.n = n

    @property
    def mean(self) -> np.ndarray:
        return self.total / np.maximum(self.n, 1.0)

    @property
    def std(self) -> np.ndarray:
        """Population standard deviation (divides by n, as numpy's default)."""
        return np.sqrt(self.m2 / np.maximum(self.n, 1.0))

    def standardizer(self, clip: float | None = None, floor: float = STD_FLOOR, dtype=np.float32) -> "Standardizer":
        return Standardizer.from_stats(self.mean, self.std, clip, floor, dtype)


@dataclass(frozen=True)
class Standardizer:
    """z = clip((x − mean) / std); NaN → 0. Arithmetic in the wider of the input's and the statistics' dtype."""

    mean: np.ndarray  # (width,)
    std: np.ndarray  # (width,), already floored: never 0
    clip: float | None = None

    @classmethod
    def from_stats(
        cls, mean: np.ndarray, std: np.ndarray, clip: float | None = None, floor: float = STD_FLOOR, dtype=np.float64
    ) -> "Standardizer":
        std = np.where(std > floor, std, 1.0)
        return cls(np.asarray(mean, dtype=dtype), np.asarray(std, dtype=dtype), clip)

    @classmethod
    def fit(cls, matrix: np.ndarray, clip: float | None = None, floor: float = STD_FLOOR, dtype=np.float64) -> "Standardizer":
        """Exact column mean and std of a finite in-memory matrix, two passes over float64 row chunks."""
        n, width = max(len(matrix), 1), matrix.shape[1]
        mean = column_sum((matrix[r].astype(np.float64) for r in spans(len(matrix))), width) / n
        deviations = (np.square(matrix[r].astype(np.float64) - mean) for r in spans(len(matrix)))
        std = np.sqrt(column_sum(deviations, width) / n)
        return cls.from_stats(mean, std, clip, floor, dtype)

    def transform(self, x: np.ndarray, inplace: bool = False) -> np.ndarray:
        """z-scores of `x`; `inplace` overwrites `x` (one matrix of memory less) when dtypes allow."""
        dtype = np.result_type(x.dtype, self.mean.dtype)
        z = np.subtract(x, self.mean, out=x if inplace and x.dtype == dtype else None, dtype=dtype)
        np.divide(z, self.std, out=z)
        if self.clip is not None:
            np.clip(z, -self.clip, self.clip, out=z)  # also maps ±inf to ±clip
        np.copyto(z, 0.0, where=np.isnan(z))
        return z

    def to_dict(self) -> dict[str, np.ndarray]:
        """Arrays for an `.npz` (the clip, a scalar, as a 0-d array; NaN for none)."""
        return {"mean": self.mean, "std": self.std, "clip": np.array(np.nan if self.clip is None else self.clip)}

    @classmethod
    def from_dict(cls, arrays: dict[str, np.ndarray]) -> "Standardizer":
        clip = float(arrays["clip"])
        return cls(np.asarray(arrays["mean"]), np.asarray(arrays["std"]), None if np.isnan(clip) else clip)
