"""Loss terms of the residual autoencoder and its curriculum noise schedule."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def noise_sigma(epoch: int, epochs: int, start: float = 0.10, end: float = 0.02) -> float:
    """Input-noise std of `epoch` (0-based): linear from `start` at the first epoch to `end` at the last."""
    if epochs <= 1:
        return start
    return start + (end - start) * min(epoch, epochs - 1) / (epochs - 1)


def info_nce(a: torch.Tensor, b: torch.Tensor, temperature: float) -> torch.Tensor:
    """Symmetric InfoNCE between two views (B, d): row i of `a` and of `b` are positives, the
    other rows of the batch negatives; cosine similarity divided by `temperature`."""
    logits = F.normalize(a, dim=1) @ F.normalize(b, dim=1).T / temperature  # (B, B)
    labels = torch.arange(len(a), device=a.device)
    return 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels))


def autoencoder_loss(
    x: torch.Tensor,
    recon: tuple[torch.Tensor, torch.Tensor],
    latents: tuple[torch.Tensor, torch.Tensor],
    lambda_con: float,
    lambda_l2: float,
    temperature: float,
) -> torch.Tensor:
    """MSE(x̂, x) + λ_con·InfoNCE(z′, z″) + λ_L2·mean‖z‖², the MSE and ‖z‖² averaged over both noisy views.

    `x` is the clean (standardised) input: each noisy view is trained to reconstruct it (denoising).
    """
    rec = 0.5 * (F.mse_loss(recon[0], x) + F.mse_loss(recon[1], x))
    l2 = 0.5 * (latents[0].pow(2).sum(1).mean() + latents[1].pow(2).sum(1).mean())
    return rec + lambda_con * info_nce(latents[0], latents[1], temperature) + lambda_l2 * l2
