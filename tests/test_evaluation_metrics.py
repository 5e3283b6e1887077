"""AUROC, Novelty and Diversity against hand-computed values and reference implementations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from ubp.evaluation.metrics import (
    EpochMetrics,
    auroc,
    auroc_inputs,
    auroc_per_label,
    diversity,
    novelty,
    score_epoch,
)


def test_auroc_hand_computed_with_ties():
    scores = torch.tensor([[0.1], [0.4], [0.35], [0.8]])
    labels = torch.tensor([[0], [0], [1], [1]])
    assert auroc_per_label(scores, labels).item() == pytest.approx(0.75)
    # positives {0.5, 0.9}, negatives {0.5, 0.2}: 3 wins + 1 tie (half credit) out of 4 pairs
    tied = torch.tensor([[0.5], [0.5], [0.2], [0.9]])
    assert auroc_per_label(tied, torch.tensor([[1], [0], [0], [1]])).item() == pytest.approx(0.875)


def test_label_without_positives_scores_zero_and_counts_in_macro():
    scores = torch.tensor([[0.9, 0.3, 0.2], [0.1, 0.6, 0.4], [0.8, 0.2, 0.9]])
    labels = torch.tensor([[1, 0, 1], [0, 0, 1], [1, 0, 1]])  # label 1: no positive; label 2: no negative
    per_label = auroc_per_label(scores, labels)
    assert per_label.tolist() == [1.0, 0.0, 0.0]
    assert auroc(scores, labels, batch_size=128) == pytest.approx(1 / 3)


def test_auroc_matches_sklearn_on_random_tied_scores():
    rng = np.random.default_rng(0)
    scores = np.round(rng.normal(size=(500, 7)), 1).astype(np.float32)  # many ties
    labels = rng.random((500, 7)) < np.linspace(0.05, 0.6, 7)
    ours = auroc_per_label(torch.from_numpy(scores), torch.from_numpy(labels)).numpy()
    ref = [roc_auc_score(labels[:, j], scores[:, j]) for j in range(7)]
    np.testing.assert_allclose(ours, ref, atol=1e-12)


@pytest.mark.filterwarnings("ignore:No positive samples")
def test_auroc_matches_torchmetrics_batched_logits_including_unit_range_batch():
    from torchmetrics.classification import MultilabelAUROC

    rng = np.random.default_rng(1)
    logits = torch.from_numpy(rng.normal(scale=3, size=(300, 5)).astype(np.float32))
    logits[128:256] = torch.rand(128, 5)  # a whole batch inside [0, 1]: torchmetrics skips its sigmoid
    logits[:10] = 40.0  # saturated sigmoids tie at exactly 1.0
    labels = torch.from_numpy(rng.random((300, 5)) < 0.3)
    labels[:, 4] = False  # no positive at all
    metric = MultilabelAUROC(num_labels=5)
    for lo in range(0, 300, 128):
        metric.update(logits[lo : lo + 128], labels[lo : lo + 128].long())
    assert auroc(logits, labels, batch_size=128) == pytest.approx(metric.compute().item(), abs=1e-6)


def test_auroc_inputs_applies_sigmoid_per_batch():
    logits = torch.tensor([[0.2], [0.9], [2.0], [0.5]])
    out = auroc_inputs(logits, batch_size=2)
    assert out[:2].tolist() == [[pytest.approx(0.2)], [pytest.approx(0.9)]]
    assert out[2:, 0].tolist() == pytest.approx([1 / (1 + math.exp(-2.0)), 1 / (1 + math.exp(-0.5))])


def test_novelty_hand_computed():
    # popularity [3, 1], k = 2 → normalised [0.75, 0.25]; sigmoid 0.1 on both → mass 0.1 per client
    logit = math.log(0.1 / 0.9)
    logits = torch.full((4, 2), logit)
    assert novelty(logits, np.array([3, 1])) == pytest.approx(0.9**100, rel=1e-4)
    # certain about both targets: mass 1 → novelty 0
    assert novelty(torch.full((3, 2), 50.0), np.array([3, 1])) == pytest.approx(0.0, abs=1e-12)


def test_novelty_uses_top_ten_only():
    popularity = np.arange(1, 13, dtype=float)  # 12 targets, k = 10: top-10 sum = 75
    logits = torch.full((1, 12), -50.0)
    logits[0, 0] = 50.0  # only the least popular target (popularity 1) is predicted
    assert novelty(logits, popularity) == pytest.approx((1 - 1 / 75) ** 100, rel=1e-5)


def test_diversity_uniform_and_peaked():
    uniform = torch.zeros(1, 4)
    peaked = torch.tensor([[30.0, -30.0, -30.0, -30.0]])
    assert diversity(uniform) == pytest.approx(1.0, abs=1e-6)
    assert diversity(peaked) == pytest.approx(0.0, abs=1e-6)
    assert diversity(torch.cat([uniform, peaked])) == pytest.approx(0.5, abs=1e-6)


def test_score_weights_and_churn_score():
    assert EpochMetrics(auroc=0.7).score == 0.7
    assert EpochMetrics(auroc=0.5, novelty=0.2, diversity=0.9).score == pytest.approx(0.4 + 0.02 + 0.09)
    logits = torch.tensor([[2.0], [-1.0], [0.5]])
    labels = torch.tensor([[1], [0], [0]])
    assert score_epoch(logits, labels, None, 128) == EpochMetrics(auroc=1.0)
