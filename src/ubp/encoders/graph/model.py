"""TwHIN (docs/methods.md §B): user table, item table and relation vectors scored by cosine.

score(u, i, r) = σ(scale · normalize(user_u) · normalize(item_i + relation_r) + bias). The slides
use scale = 1, bias = 0; `learn_scale` learns both, as in SigLIP's sigmoid loss. The two tables are
sparse embeddings (trained with SparseAdam); relations, scale and bias are dense (Adam). With
`item_features` the item table is replaced by `ContentItems`: fixed features through a dense map.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ContentItems(nn.Module):
    """Item vectors = W · features: frozen per-item features (a buffer, never trained) and a learned map.

    The features are divided by their root-mean-square row norm, so with W ~ N(0, 1/dim) an item
    vector starts at the item table's scale (norm ≈ 1) whatever the scale of the features' source.
    """

    def __init__(self, features: torch.Tensor, dim: int) -> None:
        super().__init__()
        rms = features.square().sum(1).mean().sqrt().clamp_min(1e-12)
        self.register_buffer("features", features / rms)
        self.map = nn.Linear(features.shape[1], dim, bias=False)  # the relations already give an offset

    @property
    def weight(self) -> nn.Parameter:
        return self.map.weight

    def forward(self, items: torch.Tensor) -> torch.Tensor:
        return self.map(self.features[items])


class TwHIN(nn.Module):
    def __init__(
        self, n_users: int, n_items: int, n_relations: int, dim: int, learn_scale: bool, scale: float = 1.0, bias: float = 0.0,
        item_features: torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        self.users = nn.Embedding(n_users, dim, sparse=True)
        self.items = nn.Embedding(n_items, dim, sparse=True) if item_features is None else ContentItems(item_features, dim)
        self.relations = nn.Embedding(n_relations, dim)
        for table in (self.users, self.items, self.relations):
            nn.init.normal_(table.weight, std=dim**-0.5)
        self.log_scale = nn.Parameter(torch.tensor(float(scale)).log(), requires_grad=learn_scale)
        self.bias = nn.Parameter(torch.tensor(float(bias)), requires_grad=learn_scale)

    def targets(self, items: torch.Tensor, relations: torch.Tensor) -> torch.Tensor:
        """normalize(item + relation) (B, dim)."""
        return F.normalize(self.items(items) + self.relations(relations), dim=-1)

    def forward(self, users: torch.Tensor, items: torch.Tensor, relations: torch.Tensor) -> torch.Tensor:
        """Logits of every (user of edge i, target of edge j) pair of the batch (B, B)."""
        u = F.normalize(self.users(users), dim=-1)
        return self.log_scale.exp() * u @ self.targets(items, relations).T + self.bias

    def sparse_parameters(self) -> list[nn.Parameter]:
        return [self.users.weight] + ([self.items.weight] if isinstance(self.items, nn.Embedding) else [])

    def dense_parameters(self) -> list[nn.Parameter]:
        dense = [p for p in (self.relations.weight, self.log_scale, self.bias) if p.requires_grad]
        return dense + ([self.items.weight] if isinstance(self.items, ContentItems) else [])


def in_batch_bce(logits: torch.Tensor, same_target: torch.Tensor) -> torch.Tensor:
    """TwHIN loss of a batch: −(1/B) Σ_i [log p_ii + Σ_{j≠i} log(1 − p_ij)], p = σ(logits).

    `same_target[i, j]` marks pairs whose target equals edge i's own (same item and relation):
    such a j is no negative for i, so it is left out.
    """
    eye = torch.eye(len(logits), dtype=torch.bool, device=logits.device)
    pos = F.logsigmoid(logits.diagonal())
    neg = (F.logsigmoid(-logits) * ~(same_target | eye)).sum(1)
    return -(pos + neg).mean()
