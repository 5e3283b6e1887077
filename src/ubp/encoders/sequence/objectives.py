"""The training objectives: NIP, NUP (sampled softmax), NETP (cross-entropy), TDP (squared error),
and the optional future window (sampled softmax over the ids of an event in the coming days).

Hidden state i (after i events) predicts event i, so a batch's targets are its own events
(the future window's targets come with the batch: `future_ids`, `future_valid`, see future.py).
Each objective is the mean over its own target positions; padding is never a target, and a
state-0 prediction counts only where the chunk starts the user's history (elsewhere the
start vector would be asked to guess the middle of a history it cannot see).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

import torch
import torch.nn.functional as F

from ubp.encoders.sequence.config import SequenceConfig
from ubp.encoders.sequence.model import SequenceModel
from ubp.encoders.sequence.tokens import ITEM_TYPES
from ubp.layout import EventType


@dataclass(frozen=True)
class ItemVocabulary:
    """Distinct item keys (sorted) with their log popularity, for uniform negatives and logQ."""

    keys: torch.Tensor  # int64 (V,) sorted
    log_popularity: torch.Tensor  # float32 (V,): log of each key's share of item events


def sampled_softmax(
    queries: torch.Tensor,
    target_keys: torch.Tensor,
    candidate_keys: torch.Tensor,
    candidate_vectors: torch.Tensor,
    temperature: float,
    log_q: torch.Tensor | None = None,
    weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """Sum over queries of -log softmax(target) among the candidates (times `weights` (n,) if given).

    queries (n, d); target_keys (n,); candidate_keys (m,) sorted and unique, containing every
    target; candidate_vectors (m, d); log_q (m,) the log expected count of each candidate in the
    sample (subtracted from its logit: the logQ correction). With every item as a candidate and
    no correction this is the full softmax cross-entropy.
    """
    logits = queries @ candidate_vectors.T / temperature  # (n, m)
    if log_q is not None:
        logits = logits - log_q
    target = torch.searchsorted(candidate_keys, target_keys)
    if weights is None:
        return F.cross_entropy(logits.float(), target, reduction="sum")
    return (F.cross_entropy(logits.float(), target, reduction="none") * weights).sum()


def objective_losses(
    model: SequenceModel,
    hidden: torch.Tensor,
    batch: dict[str, torch.Tensor],
    is_first: torch.Tensor,
    cfg: SequenceConfig,
    vocab: ItemVocabulary,
    generator: torch.Generator,
) -> dict[str, torch.Tensor]:
    """Per-objective mean losses of one batch (only the objectives with weight > 0).

    `hidden` is `model(batch)` (B, L + 1, d), computed by the caller so that a DDP wrapper runs it;
    the heads are taken from the bare `model`.
    """
    after = hidden[:, 1:]  # (B, L, d): state i + 1 has just seen event i
    hidden = hidden[:, :-1]  # (B, L, d): state i predicts event i
    event_type = batch["event_type"]
    position = torch.arange(event_type.shape[1], device=event_type.device)
    real = position[None] < batch["length"][:, None]
    predict = real & ((position[None] > 0) | is_first[:, None])
    rows = cfg.hash_rows
    losses: dict[str, torch.Tensor] = {}
    if cfg.netp_weight > 0:
        logits = model.next_type(hidden[predict]).float()
        losses["netp"] = F.cross_entropy(logits, event_type[predict], reduction="sum") / _count(predict)
    if cfg.tdp_weight > 0:
        has_gap = real & (position[None] > 0)
        error = model.next_gap(hidden[has_gap]).squeeze(-1).float() - batch["log_gap"][has_gap]
        losses["tdp"] = error.square().sum() / _count(has_gap)
    ids = batch["ids"]
    if cfg.nip_weight > 0:
        is_item = torch.isin(event_type, torch.tensor([int(t) for t in ITEM_TYPES], device=event_type.device))
        mask = predict & is_item & (ids[..., 0] > 0)
        keys = ids[..., 0][mask] * rows + ids[..., 1][mask]
        draws = (  # a log with no item events (e.g. visits only) has no vocabulary to draw from
            torch.randint(len(vocab.keys), (cfg.uniform_negatives,), generator=generator)
            if len(vocab.keys)
            else torch.zeros(0, dtype=torch.long)
        )
        negatives = vocab.keys[draws.to(keys.device)]
        candidates = torch.unique(torch.cat([keys, negatives]))
        log_q = _log_expected_count(candidates, vocab, len(keys), len(negatives))
        queries = F.normalize(model.item_query(hidden[mask]), dim=-1)
        vectors = model.key_vectors(candidates, model.item_out)
        losses["nip"] = sampled_softmax(queries, keys, candidates, vectors, cfg.temperature, log_q) / _count(mask)
    if cfg.nup_weight > 0:
        mask = predict & (event_type == int(EventType.PAGE_VISIT)) & (ids[..., 4] > 0)
        keys = ids[..., 4][mask] * rows + ids[..., 5][mask]
        candidates = torch.unique(keys)  # in-batch negatives
        queries = F.normalize(model.url_query(hidden[mask]), dim=-1)
        vectors = model.key_vectors(candidates, model.url_out)
        losses["nup"] = sampled_softmax(queries, keys, candidates, vectors, cfg.temperature) / _count(mask)
    if cfg.future_window_weight > 0:
        losses["future_window"] = _future_window_loss(model, after, batch, cfg)
    return losses


def _future_window_loss(
    model: SequenceModel, after: torch.Tensor, batch: dict[str, torch.Tensor], cfg: SequenceConfig
) -> torch.Tensor:
    """Mean over positions with a future of the mean over the drawn event's ids of a sampled softmax.

    Each id kind (SKU, category, URL) is its own softmax among the batch's ids of that kind
    (in-batch negatives), so a position's SKU and category never compete with each other.
    SKUs and categories are scored through `item_out`, URLs through `url_out`.
    """
    valid = batch["future_valid"]
    labels = batch["future_ids"][valid]  # (n, 6)
    queries = F.normalize(model.future_query(after[valid]), dim=-1)
    present = labels[:, 0::2] > 0  # (n, kinds)
    share = 1.0 / present.sum(1).clamp(min=1)
    loss = queries.new_zeros((), dtype=torch.float32)
    for k, out in enumerate((model.item_out, model.item_out, model.url_out)):
        has = present[:, k]
        keys = labels[has, 2 * k] * cfg.hash_rows + labels[has, 2 * k + 1]
        candidates = torch.unique(keys)
        vectors = model.key_vectors(candidates, out)
        loss = loss + sampled_softmax(queries[has], keys, candidates, vectors, cfg.temperature, weights=share[has])
    return loss / _count(valid)


def total_loss(losses: dict[str, torch.Tensor], cfg: SequenceConfig) -> torch.Tensor:
    """Weighted sum of the per-objective means."""
    return sum(getattr(cfg, f"{name}_weight") * value for name, value in losses.items())


def vocabulary_tensors(keys: np.ndarray, counts: np.ndarray, device: torch.device | str = "cpu") -> ItemVocabulary:
    """Vocabulary tensors from `tokens.item_vocabulary` output."""
    counts = torch.as_tensor(counts, dtype=torch.float64)
    share = counts / counts.sum().clamp(min=1)
    return ItemVocabulary(
        keys=torch.as_tensor(keys, dtype=torch.int64).to(device), log_popularity=share.log().float().to(device)
    )


def _log_expected_count(candidates: torch.Tensor, vocab: ItemVocabulary, n_batch: int, n_uniform: int) -> torch.Tensor:
    """log E[times a candidate is drawn]: batch targets follow popularity, negatives are uniform."""
    if len(vocab.keys) == 0:
        return torch.zeros(len(candidates), device=candidates.device)
    index = torch.searchsorted(vocab.keys, candidates).clamp(max=len(vocab.keys) - 1)
    known = vocab.keys[index] == candidates
    popularity = torch.where(known, vocab.log_popularity[index].exp(), torch.zeros_like(index, dtype=torch.float32))
    expected = n_batch * popularity + n_uniform / len(vocab.keys)
    return expected.clamp(min=1e-12).log()


def _count(mask: torch.Tensor) -> torch.Tensor:
    return mask.sum().clamp(min=1)
