"""Vectorised draws the world needs many times: items within groups, categories per row, byte vectors."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class GroupedSampler:
    """Draw an item of a given group with probability proportional to its weight, for many rows at once.

    Items are sorted by group and their weights accumulated once; a draw is then one
    `searchsorted`, clamped to its group so rounding can never leak into a neighbour.
    """

    items: np.ndarray  # item indices sorted by group
    cum: np.ndarray  # cumulative weight along `items`, with a leading 0
    lo: np.ndarray  # per group: first position in `items`
    hi: np.ndarray  # per group: one past the last position

    @classmethod
    def build(cls, group: np.ndarray, weight: np.ndarray, n_groups: int) -> "GroupedSampler":
        order = np.argsort(group, kind="stable")
        cum = np.concatenate([[0.0], np.cumsum(weight[order], dtype=np.float64)])
        bounds = np.searchsorted(group[order], np.arange(n_groups + 1))
        return cls(order, cum, bounds[:-1], bounds[1:])

    def total(self, groups: np.ndarray) -> np.ndarray:
        return self.cum[self.hi[groups]] - self.cum[self.lo[groups]]

    def item_probability(self, n_items: int) -> np.ndarray:
        """(n_items,) chance of each item when its group is drawn (0 in a weightless group)."""
        group = np.repeat(np.arange(len(self.lo)), self.hi - self.lo)
        total = self.total(group)
        out = np.zeros(n_items)
        out[self.items] = np.diff(self.cum) / np.where(total > 0, total, 1.0)
        return out

    def sample(self, groups: np.ndarray, u: np.ndarray) -> np.ndarray:
        """One item per row of `groups` (u uniform in [0, 1)); -1 where the group has no weight."""
        lo, hi = self.lo[groups], self.hi[groups]
        target = self.cum[lo] + u * (self.cum[hi] - self.cum[lo])
        pos = np.searchsorted(self.cum, target, side="right") - 1
        pos = np.clip(pos, lo, np.maximum(hi - 1, lo))
        return np.where(self.total(groups) > 0, self.items[np.minimum(pos, len(self.items) - 1)], -1)


def draw_rows(probs: np.ndarray, u: np.ndarray) -> np.ndarray:
    """One column index per row of a (n, k) matrix of probabilities (rows need not be normalised)."""
    cum = np.cumsum(probs, axis=1)
    return np.minimum((cum <= (u * cum[:, -1])[:, None]).sum(axis=1), probs.shape[1] - 1)


def quantize(x: np.ndarray) -> np.ndarray:
    """Continuous vectors to the challenge's 0..255 byte codes (about ±2.7 sd fit the range)."""
    return np.clip(np.rint(128.0 + 48.0 * x), 0, 255).astype(np.uint8)
