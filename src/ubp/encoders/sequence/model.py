"""The causal Transformer: event embedding, pre-norm blocks, heads of the training objectives.

A learned start vector sits before every sequence (position 0), so hidden state i is the
summary of the first i events and predicts event i. The state at position 0 sees nothing but
the start vector: it is the learned "empty history" embedding, trained by predicting users'
first events, and it is what users without events get.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ubp.encoders.sequence.config import SequenceConfig
from ubp.encoders.sequence.tokens import width_multiple
from ubp.layout import VECTOR_LEN, EventType

TOKEN_VALUES = 256


class ReadOut(NamedTuple):
    """A batch's states as an embedding reads them, per row: `last` (B, d), the state after the row's
    last real slot; `total` (B, d), the sum of its states 0..length (length + 1 terms, for a mean
    over a history cut into chunks); per event type (B, T, d / B, T), the sum of the states after
    that type's events and their count, and the state after its last one with that event's slot
    (-1 where the row has none)."""

    last: torch.Tensor
    total: torch.Tensor
    type_total: torch.Tensor
    type_count: torch.Tensor
    type_last: torch.Tensor
    type_last_at: torch.Tensor


class EventEmbedding(nn.Module):
    """Content (ids, price, name/query) concatenated and projected, plus summed context."""

    def __init__(self, cfg: SequenceConfig) -> None:
        super().__init__()
        d, part = cfg.width, cfg.part_dim
        self.table = nn.Embedding(cfg.hash_rows, part // 2, padding_idx=0)  # shared "unified embedding"
        self.price = nn.Embedding(cfg.price_buckets + 1, part, padding_idx=0)
        self.name = nn.Embedding(VECTOR_LEN * TOKEN_VALUES + 1, part, padding_idx=0)
        self.project = nn.Linear(5 * part, d)  # sku, category, url (two lookups each), price, name
        self.event_type = nn.Embedding(len(EventType), d)
        self.position = nn.Embedding(cfg.max_len + 1, d)
        self.weekday = nn.Embedding(7, d)
        self.hour = nn.Embedding(24, d)
        self.gap = nn.Linear(1, d)
        self.age = nn.Linear(1, d)
        self.register_buffer("token_offset", torch.arange(VECTOR_LEN) * TOKEN_VALUES + 1, persistent=False)
        self.now: nn.Parameter | None = None  # the now token's vector and the time-to-now input: see `time_inputs`
        self.until: nn.Linear | None = None

    def time_inputs(self) -> None:
        """Add the now token and the time-to-now input (created after the rest is initialised, so a
        model without them starts from exactly the same weights)."""
        self.now = nn.Parameter(torch.randn(self.position.embedding_dim) * 0.02)
        self.until = nn.Linear(1, self.position.embedding_dim)
        _init(self.until)

    def content(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The event's content alone (ids, price, name/query) (B, L, d): also what the graph block
        takes as an item's vector, since it depends on the product and not on when it was seen."""
        ids = self.table(batch["ids"]).flatten(-2)  # (B, L, 3 * part)
        name_index = (batch["tokens"] + self.token_offset) * batch["has_tokens"][..., None]
        name = self.name(name_index).mean(-2)  # (B, L, part); zero for events without a name/query
        return self.project(torch.cat([ids, self.price(batch["price"]), name], dim=-1))

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        n = batch["event_type"].shape[1]
        content = self.content(batch)
        # the held-out target after a training chunk's now token takes the last row (its state is no prediction)
        positions = torch.arange(1, n + 1, device=content.device).clamp(max=self.position.num_embeddings - 1)
        kind = self.event_type(batch["event_type"])
        if self.now is not None:
            kind = torch.where(batch["is_now"][..., None], self.now.to(kind.dtype), kind)
            kind = kind + self.until(batch["log_until"][..., None])
        context = (
            kind
            + self.position(positions)[None]
            + self.weekday(batch["weekday"])
            + self.hour(batch["hour"])
            + self.gap(batch["log_gap"][..., None])
            + self.age(batch["log_age"][..., None])
        )
        return content + context  # (B, L, d)


class Block(nn.Module):
    """Pre-norm Transformer block with causal scaled-dot-product attention."""

    def __init__(self, cfg: SequenceConfig) -> None:
        super().__init__()
        d = cfg.width
        self.heads = cfg.heads
        self.dropout = cfg.dropout
        self.ln1 = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.out = nn.Linear(d, d)
        self.ln2 = nn.LayerNorm(d)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        # Padding sits right of every real event, so causality alone keeps it out of real positions;
        # is_causal without an extra mask also keeps the fused (flash) kernels usable.
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=self.dropout if self.training else 0.0)
        x = x + self.drop(self.out(a.transpose(1, 2).reshape(b, n, d)))
        return x + self.drop(self.mlp(self.ln2(x)))


class SequenceModel(nn.Module):
    """Events (B, L) → hidden states (B, L + 1, d); state i summarises the first i events."""

    def __init__(self, cfg: SequenceConfig) -> None:
        super().__init__()
        d = cfg.width
        self.hash_rows = cfg.hash_rows
        self.embed = EventEmbedding(cfg)
        self.start = nn.Parameter(torch.zeros(d))  # the learned input before every history
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.layers))
        self.ln_f = nn.LayerNorm(d)
        self.next_type = nn.Linear(d, len(EventType))  # NETP
        self.next_gap = nn.Linear(d, 1)  # TDP
        self.item_query = nn.Linear(d, d)  # NIP
        self.url_query = nn.Linear(d, d)  # NUP
        self.item_out = nn.Linear(cfg.part_dim, d)  # an item's two hash lookups → item vector
        self.url_out = nn.Linear(cfg.part_dim, d)
        self.apply(_init)
        nn.init.normal_(self.start, std=0.02)
        # Only when its objective is on, and created last: with it off, the parameters, their
        # initial values and the DDP graph are exactly those of a model without it.
        self.future_query = nn.Linear(d, d) if cfg.future_window_weight > 0 else None  # future window
        if self.future_query is not None:
            _init(self.future_query)
        if cfg.time_to_cutoff:
            self.embed.time_inputs()
        # NIP's candidates from their content (the input side's `embed.content`) rather than their SKU rows
        self.item_content_out = nn.Linear(d, d) if cfg.item_content else None
        if self.item_content_out is not None:
            _init(self.item_content_out)
        # the activity objective's head (the events of each type in the coming days), created last for the same reason
        self.next_activity = nn.Linear(d, len(EventType)) if cfg.activity_weight > 0 else None
        if self.next_activity is not None:
            _init(self.next_activity)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        x = self.embed(batch)
        start = self.start.expand(x.shape[0], 1, -1).to(x.dtype)
        x = self.drop(torch.cat([start, x], dim=1))
        n = x.shape[1]
        # On a GPU the attention length is padded to a multiple of 64 (aligned kernels); the
        # padding sits right of every real position, so causality keeps it out of them.
        x = F.pad(x, (0, 0, 0, -n % width_multiple(x.device)))
        for block in self.blocks:
            x = block(x)
        return self.ln_f(x[:, :n])  # (B, L + 1, d)

    def user_embedding(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Hidden state after each sequence's last real slot (the start state if it has none)."""
        return self.read_out(self(batch), batch).last

    @staticmethod
    def read_out(hidden: torch.Tensor, batch: dict[str, torch.Tensor]) -> ReadOut:
        """What an embedding is read from, per row of the batch (see `ReadOut`)."""
        length = batch["length"]
        b, n = hidden.shape[:2]
        rows = torch.arange(b, device=hidden.device)
        taken = torch.arange(n, device=hidden.device)[None] <= length[:, None]
        states = hidden.float()
        total = (states * taken[..., None]).sum(1)
        # event j's state is states[:, j + 1]; now tokens and padding are no event
        slot = torch.arange(n - 1, device=hidden.device)
        is_event = (slot[None] < length[:, None]) & ~batch.get("is_now", torch.zeros_like(taken[:, 1:]))
        one_hot = F.one_hot(batch["event_type"], len(EventType)).float() * is_event[..., None]
        after = states[:, 1:]
        type_last_at = torch.where(one_hot > 0, slot[None, :, None], -1).amax(1)  # (B, T)
        return ReadOut(
            last=hidden[rows, length],
            total=total,
            type_total=torch.einsum("blt,bld->btd", one_hot, after),
            type_count=one_hot.sum(1),
            type_last=after[rows[:, None], type_last_at.clamp(min=0)],
            type_last_at=type_last_at,
        )

    def content_vectors(self, content: dict[str, torch.Tensor]) -> torch.Tensor:
        """Unit vectors of items from their content rows (`ids`, `price`, `tokens`, `has_tokens`, (m, ...))."""
        rows = self.embed.content({k: v[None] for k, v in content.items()})[0]
        return F.normalize(self.item_content_out(rows), dim=-1)

    def key_vectors(self, keys: torch.Tensor, out: nn.Linear) -> torch.Tensor:
        """Unit vectors of item / URL keys (row0 * hash_rows + row1) from the shared table."""
        rows = torch.stack([keys // self.hash_rows, keys % self.hash_rows], dim=-1)
        return F.normalize(out(self.embed.table(rows).flatten(-2)), dim=-1)


def _init(module: nn.Module) -> None:
    """GPT-style small normal init; padding rows of the embedding tables stay zero."""
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, std=0.02)
    if isinstance(module, nn.Linear) and module.bias is not None:
        nn.init.zeros_(module.bias)
    if isinstance(module, nn.Embedding) and module.padding_idx is not None:
        with torch.no_grad():
            module.weight[module.padding_idx].zero_()


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
