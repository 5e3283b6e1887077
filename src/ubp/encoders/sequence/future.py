"""Future-window labels: which ids a user touches in the days after each of their events.

The window is taken over the user's whole input-window history (not the training chunk), so a
position near a chunk's end still sees its future; the tokens hold only input-window events, so
nothing after the cutoff can ever be a label. The future of event g is the events after g in
the user's time order whose time is at most `timestamp[g] + days` (an event exactly `days` later
counts). Only events with an id (SKU, category or URL) are labels; search queries have none.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ubp.encoders.sequence.tokens import Tokens
from ubp.layout import US_PER_DAY

_ID_COLUMNS = (0, 2, 4)  # first hash row of sku, category, url in `Tokens.ids`


@dataclass(frozen=True)
class FutureWindow:
    """Per-event future ranges as index arithmetic, so sampling a label is a gather."""

    end: np.ndarray  # int64 (N,): the future of event g is the events g+1 .. end[g]-1
    ids_before: np.ndarray  # int64 (N+1,): events with an id among events 0 .. i-1
    id_events: np.ndarray  # int64 (M,): indices of the events with an id, in order


def future_window(tokens: Tokens, days: float) -> FutureWindow:
    """Future ranges of every event by a bisection run on all events at once (no loop over users).

    end[g] is the first event of g's user after g whose time is past `timestamp[g] + days`
    (the user's end if there is none); each step halves every event's [lo, hi) search range.
    """
    n = tokens.n_events
    ts = tokens.timestamp
    horizon = ts + np.int64(round(days * US_PER_DAY))
    lo = np.arange(1, n + 1, dtype=np.int64)
    hi = np.repeat(tokens.offsets[1:], tokens.lengths)
    for _ in range(int(tokens.lengths.max(initial=0)).bit_length()):
        mid = (lo + hi) // 2
        open_ = lo < hi
        later = ts[np.minimum(mid, n - 1)] > horizon
        hi = np.where(open_ & later, mid, hi)
        lo = np.where(open_ & ~later, mid + 1, lo)
    has_id = (tokens.ids[:, _ID_COLUMNS] > 0).any(axis=1)
    return FutureWindow(
        end=lo,
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
