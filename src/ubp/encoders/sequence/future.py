"""Future-window labels: which ids a user touches, and how often they act, in the days after each of their events.

The window is taken over the user's whole input-window history (not the training chunk), so a
position near a chunk's end still sees its future; the tokens hold only input-window events, so
nothing after the cutoff can ever be a label. The future of event g is the events after g in
the user's time order whose time is at most `timestamp[g] + days` (an event exactly `days` later
counts). Only events with an id (SKU, category or URL) are id labels; search queries have none.
Activity labels count every event, per event type, and exist only where the whole future lies
before the window's cutoff (a censored count would teach the model that users go quiet).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ubp.encoders.sequence.tokens import Tokens, batch_slots
from ubp.layout import US_PER_DAY

_ID_COLUMNS = (0, 2, 4)  # first hash row of sku, category, url in `Tokens.ids`


@dataclass(frozen=True)
class FutureWindow:
    """Per-event future ranges as index arithmetic, so sampling a label is a gather."""

    end: np.ndarray  # int64 (N,): the future of event g is the events g+1 .. end[g]-1
    ids_before: np.ndarray  # int64 (N+1,): events with an id among events 0 .. i-1
    id_events: np.ndarray  # int64 (M,): indices of the events with an id, in order


def first_after(timestamp: np.ndarray, lo: np.ndarray, hi: np.ndarray, limit: np.ndarray) -> np.ndarray:
    """For each query, the first index in [lo, hi) whose time is past `limit` (hi where there is
    none): one bisection run on all queries at once, each step halving every [lo, hi) range.
    Each range lies within one user, whose times are sorted."""
    lo, hi = lo.astype(np.int64, copy=True), hi.astype(np.int64, copy=True)
    last = max(len(timestamp) - 1, 0)
    for _ in range(int((hi - lo).max(initial=0)).bit_length()):
        mid = (lo + hi) // 2
        open_ = lo < hi
        later = timestamp[np.minimum(mid, last)] > limit
        hi = np.where(open_ & later, mid, hi)
        lo = np.where(open_ & ~later, mid + 1, lo)
    return lo


def future_window(tokens: Tokens, days: float) -> FutureWindow:
    """Future ranges of every event (no loop over users): end[g] is the first event of g's user
    after g whose time is past `timestamp[g] + days` (the user's end if there is none)."""
    n = tokens.n_events
    horizon = tokens.timestamp + np.int64(round(days * US_PER_DAY))
    end = first_after(tokens.timestamp, np.arange(1, n + 1, dtype=np.int64), np.repeat(tokens.offsets[1:], tokens.lengths),
                      horizon)
    has_id = (tokens.ids[:, _ID_COLUMNS] > 0).any(axis=1)
    return FutureWindow(
        end=end,
        ids_before=np.r_[0, np.cumsum(has_id)].astype(np.int64),
        id_events=np.flatnonzero(has_id).astype(np.int64),
    )


def future_labels(
    window: FutureWindow,
    ids: np.ndarray,
    start: np.ndarray,
    length: np.ndarray,
    generator: torch.Generator,
    width: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One future event per chunk position, drawn uniformly among those with an id.

    `start`/`length` are the chunks of a batch (B,), padded to `width` (default: the batch's
    widest, as in `make_batch`); returns the drawn events' id rows (B, L, 6) int64 and `valid`
    (B, L): real positions with a non-empty future (elsewhere the ids are 0 and the position is
    no target).
    """
    width = max(int(length.max(initial=0)), 1) if width is None else width
    pos = np.arange(width)
    real = pos[None, :] < length[:, None]
    if len(window.id_events) == 0:  # no event has an id (or no events): no position has a label
        labels = torch.zeros((len(start), width, ids.shape[1]), dtype=torch.int64)
        return labels, torch.zeros(real.shape, dtype=torch.bool)
    event = np.where(real, start[:, None] + pos[None, :], 0)
    first = window.ids_before[event + 1]
    count = np.where(real, window.ids_before[window.end[event]] - first, 0)
    draw = torch.rand(count.shape, generator=generator, dtype=torch.float64).numpy()
    pick = first + np.minimum((draw * count).astype(np.int64), np.maximum(count - 1, 0))
    valid = count > 0
    target = window.id_events[np.where(valid, pick, 0)]
    labels = np.where(valid[..., None], ids[target], 0).astype(np.int64)
    return torch.from_numpy(labels), torch.from_numpy(valid)


def activity_labels(
    tokens: Tokens,
    by_type: tuple[np.ndarray, ...],
    start: np.ndarray,
    end: np.ndarray,
    days: float,
    width: int,
    now: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """log1p(events of each type in the `days` after each slot) (B, width, types) float32 and
    `valid` (B, width): real slots whose future ends before the window's cutoff.

    The slots are those `make_batch` lays out for chunks start:end (B,); with `now` (B,), as in
    training, the now token sits before each chunk's last event and its future starts at that
    event. `by_type[k]` holds the sorted indices of type k's events (`events_by_type`), so a count
    over an index range is two binary searches.
    """
    ts = tokens.timestamp
    real, is_now, event, _ = batch_slots(start, end, width, with_now=now is not None, now_before_last=True)
    moment = ts[event] if now is None else np.where(is_now, now[:, None], ts[event])
    first = np.where(is_now, (end - 1)[:, None], event + 1)  # the now token's future starts at the chunk's last event
    horizon = moment + np.int64(round(days * US_PER_DAY))
    user_end = tokens.offsets[np.searchsorted(tokens.offsets, start, side="right")][:, None]
    stop = first_after(ts, first, np.broadcast_to(user_end, first.shape), horizon) if tokens.n_events else first
    valid = real & (horizon <= tokens.now)
    counts = np.stack([np.searchsorted(k, stop) - np.searchsorted(k, first) for k in by_type], axis=-1)
    return np.log1p(np.where(valid[..., None], counts, 0)).astype(np.float32), valid


def events_by_type(tokens: Tokens, types: int) -> tuple[np.ndarray, ...]:
    """The sorted indices of each event type's events (8 bytes per event in all)."""
    return tuple(np.flatnonzero(tokens.event_type == k) for k in range(types))
