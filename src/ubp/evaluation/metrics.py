"""The challenge's metrics, computed over a whole validation set at once.

They reproduce the organisers' torchmetrics-based code (torchmetrics 1.3.2) exactly, quirks
included, but vectorised over labels instead of one curve per label:

- AUROC is exact (all thresholds, tied scores share credit). A label with no positive or no
  negative client scores 0 and still counts in the macro average (torchmetrics returns a zero
  curve there, not NaN).
- torchmetrics receives logits and applies a sigmoid inside each batch's `update` only when
  some value of that batch lies outside [0, 1]; `auroc_inputs` replays that rule per batch,
  in float32, so saturated sigmoids tie exactly as they do there.
- Novelty and Diversity keep the organisers' epsilons (`10e-10`, i.e. 1e-9).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

EPS = 10e-10  # the organisers' spelling of 1e-9, kept for exact agreement
NOVELTY_TOP_K = 10
LABEL_CHUNK = 16  # labels sorted at once: bounds the copies at n × 16 scores


def auroc_inputs(logits: torch.Tensor, batch_size: int) -> torch.Tensor:
    """The scores torchmetrics' AUROC ranks: per batch, sigmoid unless all values are in [0, 1]."""
    n = logits.shape[0]
    row_in_unit = ((logits >= 0) & (logits <= 1)).reshape(n, -1).all(dim=1)
    n_batches = -(-n // batch_size)
    padded = torch.ones(n_batches * batch_size, dtype=torch.bool, device=logits.device)
    padded[:n] = row_in_unit
    batch_in_unit = padded.view(n_batches, batch_size).all(dim=1)
    keep = batch_in_unit.repeat_interleave(batch_size)[:n].view(n, *([1] * (logits.dim() - 1)))
    return torch.where(keep, logits, torch.sigmoid(logits))


def auroc_per_label(scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Exact AUROC of each column (Mann–Whitney with ties), 0 where a column lacks a class.

    `scores` (n, L) float, `labels` (n, L) 0/1; returns (L,) float64. A positive's tie-averaged rank
    is (scores below it) + (scores equal to it + 1) / 2, read by two binary searches in the column's
    sorted scores: one sort of values per label (no argsort, no rank table), and the same integers,
    so the same float64 AUROC, as ranking every client.
    """
    scores = scores.reshape(scores.shape[0], -1)
    labels = labels.reshape(labels.shape[0], -1).bool()
    n, n_labels = scores.shape
    out = np.zeros(n_labels, dtype=np.float64)
    for lo in range(0, n_labels, LABEL_CHUNK):
        columns = scores[:, lo : lo + LABEL_CHUNK].T.contiguous().cpu().numpy()
        positives = labels[:, lo : lo + LABEL_CHUNK].T.contiguous().cpu().numpy()
        for j, (column, ordered, is_positive) in enumerate(zip(columns, np.sort(columns, axis=1), positives)):
            values = column[is_positive]
            n_pos, n_neg = len(values), n - len(values)
            if n_pos and n_neg:
                twice_rank_sum = int((np.searchsorted(ordered, values, "left")
                                      + np.searchsorted(ordered, values, "right") + 1).sum())
                out[lo + j] = (twice_rank_sum / 2 - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
    return torch.from_numpy(out)


def auroc(logits: torch.Tensor, labels: torch.Tensor, batch_size: int) -> float:
    """The task AUROC as the organisers report it: binary, or macro over the labels."""
    return float(auroc_per_label(auroc_inputs(logits, batch_size), labels).mean())


def diversity(logits: torch.Tensor) -> float:
    """Mean entropy of each client's normalised sigmoid outputs, over log2(n_labels)."""
    p = torch.sigmoid(logits.float())
    p = p / p.sum(dim=-1, keepdim=True)
    entropy = -(p * torch.log2(p + EPS)).sum(dim=-1)  # float32 per client, as theirs
    n = logits.shape[0]
    return float(entropy.double().sum() / ((n + EPS) * np.log2(np.float32(logits.shape[1]))))


def novelty(logits: torch.Tensor, popularity: np.ndarray) -> float:
    """(1 − mean popularity mass of each client's top-k sigmoid outputs) ** 100.

    Popularity is divided by the sum of its k largest values, so a client whose top-k
    are the k most popular targets with certainty scores popularity 1, novelty 0.
    """
    k = min(NOVELTY_TOP_K, len(popularity))
    normalised = np.asarray(popularity, dtype=np.float64)
    normalised = normalised / np.sort(normalised)[-k:].sum()
    pop = torch.from_numpy(normalised).to(logits.device)
    values, idx = torch.topk(torch.sigmoid(logits.float()), k, dim=1)
    total = (values.double() * pop[idx]).sum()
    return float((1 - total / (logits.shape[0] + EPS)) ** 100)


@dataclass(frozen=True)
class EpochMetrics:
    """One validation pass. `score` is what the organisers rank (before rounding)."""

    auroc: float
    novelty: float | None = None
    diversity: float | None = None

    @property
    def score(self) -> float:
        if self.novelty is None or self.diversity is None:
            return self.auroc
        return 0.8 * self.auroc + 0.1 * self.diversity + 0.1 * self.novelty


def score_epoch(
    logits: torch.Tensor, labels: torch.Tensor, popularity: np.ndarray | None, batch_size: int
) -> EpochMetrics:
    """Churn-type tasks (no popularity) get AUROC only; propensity tasks all three metrics."""
    a = auroc(logits, labels, batch_size)
    if popularity is None:
        return EpochMetrics(auroc=a)
    return EpochMetrics(auroc=a, novelty=novelty(logits, popularity), diversity=diversity(logits))
