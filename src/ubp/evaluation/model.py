"""The challenge's fixed downstream network (an inverted-bottleneck residual MLP).

Layers that draw random numbers are created in the organisers' order (input projection,
then W1, W2 of each block, then the output layer) so that, after `torch.manual_seed(1278)`,
the initial weights are bit-identical to theirs. LayerNorms draw nothing, so where they are
created does not matter.
"""

from __future__ import annotations

import torch
from torch import nn


class Block(nn.Module):
    """x + W2·GELU(W1·LN(x)): widen, exact (erf) GELU, project back."""

    def __init__(self, thin: int, wide: int):
        super().__init__()
        self.norm = nn.LayerNorm(thin)
        self.w1 = nn.Linear(thin, wide)
        self.w2 = nn.Linear(wide, thin)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.w2(nn.functional.gelu(self.w1(self.norm(x))))


class Net(nn.Module):
    """Linear(d_in → thin) → LN → blocks → LN → Linear(thin → n_out); logits out."""

    def __init__(self, d_in: int, n_out: int, thin: int = 2048, wide: int = 4096, blocks: int = 3):
        super().__init__()
        self.input_projection = nn.Linear(d_in, thin)
        self.input_norm = nn.LayerNorm(thin)
        self.blocks = nn.ModuleList(Block(thin, wide) for _ in range(blocks))
        self.output_norm = nn.LayerNorm(thin)
        self.output = nn.Linear(thin, n_out)

    def trunk(self, x: torch.Tensor) -> torch.Tensor:  # (batch, d_in) -> (batch, thin)
        x = self.input_norm(self.input_projection(x))
        for block in self.blocks:
            x = block(x)
        return x

    def head(self, h: torch.Tensor) -> torch.Tensor:  # (batch, thin) -> (batch, n_out) logits
        return self.output(self.output_norm(h))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (batch, d_in) -> (batch, n_out)
        return self.head(self.trunk(x))
