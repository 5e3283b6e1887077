"""Residual autoencoder (docs/methods.md §F): Linear+BatchNorm+GELU layers with skip connections."""

from __future__ import annotations

import torch
from torch import nn


class ResidualLayer(nn.Module):
    """GELU(BN(Linear(x))) + skip(x); the skip is a projection where the widths differ."""

    def __init__(self, d_in: int, d_out: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(d_in, d_out), nn.BatchNorm1d(d_out), nn.GELU())
        self.skip = nn.Identity() if d_in == d_out else nn.Linear(d_in, d_out, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + self.skip(x)


def _stack(widths: list[int]) -> nn.Sequential:
    return nn.Sequential(*(ResidualLayer(a, b) for a, b in zip(widths[:-1], widths[1:])))


class ResidualAutoencoder(nn.Module):
    """x (B, n_in) → residual stack `hidden` → linear latent z (B, latent) → mirrored stack → x̂ (B, n_in).

    The input is standardised inside the model (mean/std buffers fitted on the training rows), so
    a saved model embeds raw block output on its own.
    """

    def __init__(self, n_in: int, hidden: tuple[int, ...], latent: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(n_in))
        self.register_buffer("std", torch.ones(n_in))
        self.encoder = _stack([n_in, *hidden])
        self.to_latent = nn.Linear(hidden[-1], latent)
        self.decoder = _stack([latent, *reversed(hidden)])
        self.to_output = nn.Linear(hidden[0], n_in)

    def standardize(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    def encode(self, z_in: torch.Tensor) -> torch.Tensor:
        """Standardised input (B, n_in) → latent (B, latent)."""
        return self.to_latent(self.encoder(z_in))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Latent (B, latent) → reconstruction of the standardised input (B, n_in)."""
        return self.to_output(self.decoder(z))
