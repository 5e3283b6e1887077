"""The DCN block's training loss: multitask BCE of the head plus InfoNCE between two views."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ubp.encoders.autoencoder.losses import info_nce


def head_bce(logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor, tasks: list[slice]) -> torch.Tensor:
    """Mean over tasks of each task's weighted-mean BCE.

    `weights` (B, n_out) is 1 where a label counts (churn only for users who bought before the
    inner cutoff, as the challenge scores churn only on active clients) and 0 elsewhere; a task
    with no counted label in the batch is left out, so each task weighs the same whatever its width.
    """
    per = F.binary_cross_entropy_with_logits(logits, labels, reduction="none") * weights
    terms = [per[:, s].sum() / weights[:, s].sum() for s in tasks if float(weights[:, s].sum()) > 0]
    return torch.stack(terms).mean() if terms else logits.sum() * 0.0


def dcn_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    weights: torch.Tensor,
    tasks: list[slice],
    views: tuple[torch.Tensor, torch.Tensor] | None,
    lambda_con: float,
    temperature: float,
) -> torch.Tensor:
    """head BCE + λ_con · InfoNCE(view 1, view 2) (no contrastive term when `views` is None)."""
    loss = head_bce(logits, labels, weights, tasks)
    if views is not None:
        loss = loss + lambda_con * info_nce(views[0], views[1], temperature)
    return loss
