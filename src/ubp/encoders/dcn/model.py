"""DCN-v2 over piecewise-linear encoded features (docs/methods.md §E).

Each input column is encoded with piecewise-linear encoding (PLE) over quantile bins fitted on the
training rows, and each column's code goes through its own tiny linear map to a `column_dim`
vector; the concatenation is x0. Low-rank cross layers `x_{l+1} = x0 ⊙ (U_l V_lᵀ x_l + b_l) + x_l`
model feature interactions explicitly; each layer's output is projected to a fixed width and the
concatenated projections are the user embedding. A small dense head predicts the inner-split tasks.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from torch import nn

from ubp.chunks import spans

QUANTILE_COLUMNS = 32


def quantile_edges(x: np.ndarray, n_bins: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-column PLE bins from the quantiles of `x` (n, n_cols; NaN = missing, skipped).

    Returns (lo, hi, valid), each (n_cols, n_bins): bin t of column c spans [lo, hi) where valid.
    Repeated quantiles (zero-inflated counts) give empty bins, which are left out, so such a
    column uses fewer bins; a constant or all-missing column uses none.
    """
    q = np.linspace(0.0, 1.0, n_bins + 1)
    edges = np.empty((x.shape[1], n_bins + 1))
    with warnings.catch_warnings():  # an all-missing column has NaN quantiles: no valid bin
        warnings.simplefilter("ignore", RuntimeWarning)
        # a few columns at a time: nanquantile copies its float64 input, never the whole matrix
        for cols in spans(x.shape[1], QUANTILE_COLUMNS):
            edges[cols] = np.nanquantile(x[:, cols].astype(np.float64), q, axis=0).T
    lo, hi = edges[:, :-1], edges[:, 1:]
    valid = hi > lo
    return np.where(valid, lo, 0.0).astype(np.float32), np.where(valid, hi, 1.0).astype(np.float32), valid


class PiecewiseLinear(nn.Module):
    """PLE code of every column: (B, n_cols) → (B, n_cols, n_bins + 1).

    Component t is 0 below bin t, 1 above it, linear inside; the last channel flags a missing
    value (NaN), whose bin components are all 0.
    """

    def __init__(self, lo: np.ndarray, hi: np.ndarray, valid: np.ndarray) -> None:
        super().__init__()
        self.register_buffer("lo", torch.as_tensor(lo, dtype=torch.float32))
        self.register_buffer("width", torch.as_tensor(np.where(valid, hi - lo, 1.0), dtype=torch.float32))
        self.register_buffer("valid", torch.as_tensor(valid, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        missing = torch.isnan(x)
        x = torch.where(missing, torch.zeros_like(x), x).unsqueeze(-1)  # (B, n_cols, 1)
        code = ((x - self.lo) / self.width).clamp(0.0, 1.0) * self.valid
        code = code * (~missing).unsqueeze(-1)
        return torch.cat([code, missing.unsqueeze(-1).to(code.dtype)], dim=-1)


class ColumnEmbedding(nn.Module):
    """Each column's code through its own linear map: (B, n_cols, k) → (B, n_cols, dim)."""

    def __init__(self, n_cols: int, k: int, dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(n_cols, k, dim) / k**0.5)
        self.bias = nn.Parameter(torch.zeros(n_cols, dim))

    def forward(self, code: torch.Tensor) -> torch.Tensor:
        return torch.einsum("bck,ckd->bcd", code, self.weight) + self.bias


class CrossLayer(nn.Module):
    """Low-rank DCN-v2 cross layer: x0 ⊙ (U (Vᵀ x) + b) + x."""

    def __init__(self, dim: int, rank: int) -> None:
        super().__init__()
        self.v = nn.Linear(dim, rank, bias=False)  # Vᵀ
        self.u = nn.Linear(rank, dim)  # U and b

    def forward(self, x0: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return x0 * self.u(self.v(x)) + x


def _mlp(widths: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for a, b in zip(widths[:-1], widths[1:]):
        layers += [nn.Linear(a, b), nn.GELU()]
    return nn.Sequential(*layers)


class DcnModel(nn.Module):
    """Raw columns (+ an optional frozen sequence embedding) → embedding (B, sum(widths)) → task logits."""

    def __init__(
        self,
        lo: np.ndarray,
        hi: np.ndarray,
        valid: np.ndarray,
        column_dim: int,
        ranks: tuple[int, ...],
        widths: tuple[int, ...],
        head: tuple[int, ...],
        n_out: int,
        seq_in: int = 0,
        seq_dim: int = 64,
    ) -> None:
        super().__init__()
        n_cols, n_bins = lo.shape
        self.ple = PiecewiseLinear(lo, hi, valid)
        self.columns = ColumnEmbedding(n_cols, n_bins + 1, column_dim)
        self.seq = nn.Sequential(nn.Linear(seq_in, seq_dim), nn.GELU(), nn.Linear(seq_dim, seq_dim)) if seq_in else None
        d0 = n_cols * column_dim + (seq_dim if seq_in else 0)
        self.cross = nn.ModuleList(CrossLayer(d0, r) for r in ranks)
        self.project = nn.ModuleList(nn.Linear(d0, w) for w in widths)
        self.head = nn.Sequential(_mlp([sum(widths), *head]), nn.Linear(head[-1] if head else sum(widths), n_out))

    def x0(self, x: torch.Tensor, seq: torch.Tensor | None = None, column_drop: float = 0.0) -> torch.Tensor:
        """The cross network's input; `column_drop` zeroes whole column embeddings (a cheap view)."""
        cols = self.columns(self.ple(x))  # (B, n_cols, column_dim)
        if column_drop > 0.0:
            keep = torch.rand(cols.shape[:2], device=cols.device) >= column_drop
            cols = cols * keep.unsqueeze(-1)
        parts = [cols.flatten(1)]
        if self.seq is not None:
            parts.append(self.seq(seq))
        return torch.cat(parts, dim=1)

    def embed(self, x: torch.Tensor, seq: torch.Tensor | None = None, column_drop: float = 0.0) -> torch.Tensor:
        x0 = self.x0(x, seq, column_drop)
        h, outs = x0, []
        for cross, project in zip(self.cross, self.project):
            h = cross(x0, h)
            outs.append(project(h))
        return torch.cat(outs, dim=1)
