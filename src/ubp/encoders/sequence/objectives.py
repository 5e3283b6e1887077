"""The training objectives: NIP, NUP (sampled softmax), NETP (cross-entropy), TDP (squared error),
and the optional future window (sampled softmax over the ids of an event in the coming days) and
activity (squared error on log1p of the events of each type in the coming days).

Hidden state i (after i events) predicts event i, so a batch's targets are its own events
(the future window's and activity's targets come with the batch: `future_ids`, `future_valid`,
`activity`, `activity_valid`, see future.py).
Each objective is the sum over its own target positions divided by its mean number of targets
per batch over the training data (`scale`; so every target weighs the same whatever the length
of its chunk), or without `scale` the mean over the batch's targets. Padding and now tokens are
never targets, and a state-0 prediction counts only where the chunk starts the user's history
(elsewhere the start vector would be asked to guess the middle of a history it cannot see).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

import torch
import torch.nn.functional as F

from ubp.encoders.sequence.config import SequenceConfig
from ubp.encoders.sequence.model import SequenceModel
from ubp.encoders.sequence.tokens import ITEM_TYPES
from ubp.layout import EventType

_NO_KEY = torch.iinfo(torch.int64).max  # sorts after every real key (row0 * hash_rows + row1)
_OFF = -1e9  # the logit of a candidate slot that takes no part: exp underflows to exactly 0


@dataclass(frozen=True)
class ItemVocabulary:
    """Distinct item keys (sorted) with their log popularity, for uniform negatives and logQ."""

    keys: torch.Tensor  # int64 (V,) sorted
    log_popularity: torch.Tensor  # float32 (V,): log of each key's share of item events
    content: dict[str, torch.Tensor] | None = None  # each key's content rows (`ids`, `price`, `tokens`, `has_tokens`)


def sampled_softmax(
    queries: torch.Tensor,
    target_keys: torch.Tensor,
    candidate_keys: torch.Tensor,
    candidate_vectors: torch.Tensor,
    temperature: float,
    log_q: torch.Tensor | None = None,
    keep: torch.Tensor | None = None,
) -> torch.Tensor:
    """-log softmax(target) among the candidates, per query (n,).

    queries (n, d); target_keys (n,); candidate_keys (m,) sorted, holding every target whose loss
    is used; candidate_vectors (m, d); log_q (m,) the log expected count of each candidate in the
    sample (subtracted from its logit: the logQ correction); keep (m,) False for candidate slots
    that take no part (duplicates, empty slots: see `distinct_candidates`). With every item as a
    candidate and no correction this is the full softmax cross-entropy.
    """
    logits = queries @ candidate_vectors.T / temperature  # (n, m)
    if log_q is not None:
        logits = logits - log_q
    logits = logits.float()
    if keep is not None:
        logits = logits.masked_fill(~keep, _OFF)
    target = torch.searchsorted(candidate_keys, target_keys).clamp(max=max(len(candidate_keys) - 1, 0))
    return F.cross_entropy(logits, target, reduction="none")


def distinct_candidates(keys: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(sorted keys, keep, table keys): the valid keys sorted, each distinct key kept once (its first slot).

    The shape is that of `keys` whatever the data, so nothing waits for the device to count:
    invalid slots sort last and are not kept, a repeated key is kept at its first slot only,
    which is where `searchsorted` finds it. The table keys are the sorted keys with 0 (a valid
    table row) in the slots not kept, for looking vectors up.
    """
    ordered = torch.sort(torch.where(valid, keys, _NO_KEY)).values
    first = torch.ones_like(valid)
    first[1:] = ordered[1:] != ordered[:-1]
    keep = first & (ordered != _NO_KEY)
    return ordered, keep, torch.where(keep, ordered, 0)


def objective_losses(
    model: SequenceModel,
    hidden: torch.Tensor,
    batch: dict[str, torch.Tensor],
    is_first: torch.Tensor,
    cfg: SequenceConfig,
    vocab: ItemVocabulary,
    generator: torch.Generator,
    compact: bool | None = None,
    urls: ItemVocabulary | None = None,
    scale: dict[str, float] | None = None,
) -> dict[str, torch.Tensor]:
    """Per-objective losses of one batch (only the objectives with weight > 0).

    `urls`: the URL vocabulary, for the logQ correction of NUP's in-batch negatives; `scale`:
    each objective's mean target count per batch (the loss is its sum over targets divided by
    it), else each loss is its batch mean. With `vocab.content`, NIP's candidate vectors come
    from the items' content.

    Every loss is a mask-weighted mean and candidates are deduplicated by masking, so on a GPU
    shapes never depend on the data and the step needs no host synchronisation; `generator`
    lives on the batch's device (NIP negatives are drawn there). `compact` (default: on a CPU,
    where reading a count back costs nothing) first keeps only each objective's target
    positions, which spares computing losses that the mask would zero.
    """
    compact = hidden.device.type == "cpu" if compact is None else compact
    after = hidden[:, 1:].flatten(0, 1)  # (B * L, d): state i + 1 has just seen event i
    hidden = hidden[:, :-1].flatten(0, 1)  # (B * L, d): state i predicts event i
    event_type = batch["event_type"]
    position = torch.arange(event_type.shape[1], device=event_type.device)
    real = position[None] < batch["length"][:, None]
    is_now = batch.get("is_now", torch.zeros_like(real))
    after_now = F.pad(is_now[:, :-1], (1, 0))  # its gap input is from the event before the now token
    predict = real & ~is_now & ((position[None] > 0) | is_first[:, None])
    event_type, ids = event_type.flatten(), batch["ids"].flatten(0, 1)
    reduce = functools.partial(_reduce, scale=scale or {})
    rows = cfg.hash_rows
    caps = batch.get("caps", {})
    losses: dict[str, torch.Tensor] = {}
    if cfg.netp_weight > 0:
        mask, h, target = _targets(compact, predict.flatten(), hidden, event_type)
        losses["netp"] = reduce("netp", F.cross_entropy(model.next_type(h).float(), target, reduction="none"), mask)
    if cfg.tdp_weight > 0:
        has_gap = (real & ~is_now & ~after_now & (position[None] > 0)).flatten()
        mask, h, log_gap = _targets(compact, has_gap, hidden, batch["log_gap"].flatten())
        losses["tdp"] = reduce("tdp", (model.next_gap(h).squeeze(-1).float() - log_gap).square(), mask)
    if cfg.nip_weight > 0:
        is_item = functools.reduce(torch.logical_or, (event_type == int(t) for t in ITEM_TYPES))
        mask = predict.flatten() & is_item & (ids[:, 0] > 0)
        mask, h, keys = _targets(compact, mask, hidden, ids[:, 0] * rows + ids[:, 1], cap=caps.get("nip"))
        draws = (  # a log with no item events (e.g. visits only) has no vocabulary to draw from
            torch.randint(len(vocab.keys), (cfg.uniform_negatives,), generator=generator, device=keys.device)
            if len(vocab.keys)
            else torch.zeros(0, dtype=torch.long, device=keys.device)
        )
        negatives = vocab.keys[draws]
        candidates, keep, table_keys = distinct_candidates(
            torch.cat([keys, negatives]), torch.cat([mask, torch.ones_like(negatives, dtype=torch.bool)])
        )
        log_q = _log_expected_count(table_keys, vocab, mask.sum(), len(negatives))
        queries = F.normalize(model.item_query(h), dim=-1)
        if vocab.content is None:
            vectors = model.key_vectors(table_keys, model.item_out)
        else:
            at = torch.searchsorted(vocab.keys, table_keys).clamp(max=max(len(vocab.keys) - 1, 0))
            vectors = model.content_vectors({k: v[at] for k, v in vocab.content.items()})
        error = sampled_softmax(queries, keys, candidates, vectors, cfg.temperature, log_q, keep)
        losses["nip"] = reduce("nip", error, mask)
    if cfg.nup_weight > 0:
        mask = predict.flatten() & (event_type == int(EventType.PAGE_VISIT)) & (ids[:, 4] > 0)
        mask, h, keys = _targets(compact, mask, hidden, ids[:, 4] * rows + ids[:, 5], cap=caps.get("nup"))
        candidates, keep, table_keys = distinct_candidates(keys, mask)  # in-batch negatives
        # in-batch negatives are drawn by popularity: each one's expected count is subtracted (logQ)
        log_q = None if urls is None else _log_expected_count(table_keys, urls, mask.sum(), 0)
        queries = F.normalize(model.url_query(h), dim=-1)
        vectors = model.key_vectors(table_keys, model.url_out)
        error = sampled_softmax(queries, keys, candidates, vectors, cfg.temperature, log_q, keep)
        losses["nup"] = reduce("nup", error, mask)
    if cfg.future_window_weight > 0:
        valid, h, labels = _targets(compact, batch["future_valid"].flatten(), after, batch["future_ids"].flatten(0, 1),
                                    cap=caps.get("future_window"))
        losses["future_window"] = _future_window_loss(model, h, labels, valid, cfg) / _count(valid, scale, "future_window")
    if cfg.activity_weight > 0:
        valid, h, counts = _targets(compact, batch["activity_valid"].flatten(), after, batch["activity"].flatten(0, 1))
        error = (model.next_activity(h).float() - counts).square().mean(-1)
        losses["activity"] = reduce("activity", error, valid)
    return losses


def _targets(compact: bool, mask: torch.Tensor, *rows: torch.Tensor, cap: int | None = None) -> tuple[torch.Tensor, ...]:
    """(mask, *rows) narrowed to the rows a loss needs.

    `compact`: only the rows where `mask` holds (and a mask of ones). Else, with `cap` (a bound on
    the mask's count known on the host, see `sampled_softmax_caps`), the first `cap` rows once the
    masked ones are moved to the front: a shape known without asking the device. Else every row.
    """
    if compact:
        return (mask[mask], *(r[mask] for r in rows))
    if cap is None or cap >= len(mask):
        return (mask, *rows)
    first = torch.sort(mask.to(torch.uint8), descending=True, stable=True).indices[:cap]
    return (mask[first], *(r[first] for r in rows))


def sampled_softmax_caps(event_type: np.ndarray, ids: np.ndarray, real: np.ndarray,
                         future_valid: np.ndarray | None) -> dict[str, int]:
    """Host-side bounds on the target positions of the sampled-softmax objectives of one batch,
    rounded up to a power of two (a handful of shapes): their queries and candidates need only
    that many rows, and the bound comes from the host arrays the batch is built from."""
    item = np.isin(event_type, [int(t) for t in ITEM_TYPES]) & (ids[..., 0] > 0)
    visit = (event_type == int(EventType.PAGE_VISIT)) & (ids[..., 4] > 0)
    counts = {"nip": int((real & item).sum()), "nup": int((real & visit).sum())}
    if future_valid is not None:
        counts["future_window"] = int(future_valid.sum())
    return {name: max(64, 1 << max(n - 1, 0).bit_length()) for name, n in counts.items()}


def _future_window_loss(
    model: SequenceModel, after: torch.Tensor, labels: torch.Tensor, valid: torch.Tensor, cfg: SequenceConfig
) -> torch.Tensor:
    """Sum over positions with a future of the mean over the drawn event's ids of a sampled softmax.

    Each id kind (SKU, category, URL) is its own softmax among the batch's ids of that kind
    (in-batch negatives), so a position's SKU and category never compete with each other.
    SKUs and categories are scored through `item_out`, URLs through `url_out`. `after` (n, d)
    are the states, `labels` (n, 6) the drawn events' ids and `valid` (n,) the positions with a future.
    """
    queries = F.normalize(model.future_query(after), dim=-1)
    present = (labels[:, 0::2] > 0) & valid[:, None]  # (n, kinds)
    share = 1.0 / present.sum(1).clamp(min=1)
    loss = queries.new_zeros((), dtype=torch.float32)
    for k, out in enumerate((model.item_out, model.item_out, model.url_out)):
        has = present[:, k]
        keys = labels[:, 2 * k] * cfg.hash_rows + labels[:, 2 * k + 1]
        candidates, keep, table_keys = distinct_candidates(keys, has)
        vectors = model.key_vectors(table_keys, out)
        error = sampled_softmax(queries, keys, candidates, vectors, cfg.temperature, keep=keep)
        loss = loss + torch.where(has, error * share, 0.0).sum()
    return loss


def vocabulary_tensors(keys: np.ndarray, counts: np.ndarray, device: torch.device | str = "cpu",
                       content: dict[str, np.ndarray] | None = None) -> ItemVocabulary:
    """Vocabulary tensors from `tokens.item_vocabulary` output (with `content`: each key's content rows)."""
    counts = torch.as_tensor(counts, dtype=torch.float64)
    share = counts / counts.sum().clamp(min=1)
    return ItemVocabulary(
        keys=torch.as_tensor(keys, dtype=torch.int64).to(device), log_popularity=share.log().float().to(device),
        content=None if content is None else {
            k: torch.as_tensor(v).to(device).long() if v.dtype != bool else torch.as_tensor(v).to(device)
            for k, v in content.items()},
    )


def _log_expected_count(candidates: torch.Tensor, vocab: ItemVocabulary, n_batch: int, n_uniform: int) -> torch.Tensor:
    """log E[times a candidate is drawn]: batch targets follow popularity, negatives are uniform."""
    if len(vocab.keys) == 0:
        return torch.zeros(len(candidates), device=candidates.device)
    index = torch.searchsorted(vocab.keys, candidates).clamp(max=len(vocab.keys) - 1)
    known = vocab.keys[index] == candidates
    popularity = torch.where(known, vocab.log_popularity[index].exp(), torch.zeros_like(index, dtype=torch.float32))
    expected = n_batch * popularity + n_uniform / len(vocab.keys)  # keys outside the vocabulary: never targets
    return expected.clamp(min=1e-12).log()


def _count(mask: torch.Tensor, scale: dict[str, float] | None = None, name: str = "") -> torch.Tensor | float:
    """What a loss's sum is divided by: the objective's mean target count per batch, else the batch's count."""
    if scale and name in scale:
        return scale[name]
    return mask.sum().clamp(min=1)


def _reduce(name: str, values: torch.Tensor, mask: torch.Tensor, scale: dict[str, float]) -> torch.Tensor:
    """Sum of `values` where `mask` holds over `_count` (0 when it holds nowhere); other values, even inf, never leak in."""
    return torch.where(mask, values, 0.0).sum() / _count(mask, scale, name)
