"""Activity objective of the sequential encoder: per-type counts of the coming days, censoring, the now slot
(its training and resumption: test_sequence_future_window.py)."""

from __future__ import annotations

import numpy as np
from test_sequence import one_thread, window  # noqa: F401 (fixtures)
from test_sequence_future_window import hand_tokens

from ubp.data.window import InputWindow
from ubp.encoders.sequence.future import activity_labels, events_by_type
from ubp.encoders.sequence.tokens import tokenize

DAY = 86_400_000_000
# events of each type (buy, add, remove, visit, search) in the 14 days after each hand-made event
# (test_sequence_future_window.ROWS: user 1 is events 0..4, user 2 is 5..6; the log ends 2024-02-10)
EXPECTED = [[0, 1, 0, 0, 1], [1, 1, 0, 0, 0], [1, 0, 0, 0, 0], [0, 0, 0, 0, 0], None, [0, 1, 0, 0, 0], [0, 0, 0, 0, 0]]


def test_counts_match_hand_computed_and_censored_futures_are_no_target() -> None:
    tokens = hand_tokens()
    counts, valid = activity_labels(tokens, events_by_type(tokens, 5), np.array([0, 5]), np.array([5, 7]), 14.0, 6)
    expected = [EXPECTED[:5] + [None], EXPECTED[5:] + [None] * 4]
    for b, row in enumerate(expected):
        for j, want in enumerate(row):
            assert bool(valid[b, j]) == (want is not None), (b, j)  # event 4's 14 days run past the log's end
            if want is not None:
                np.testing.assert_allclose(counts[b, j], np.log1p(want), rtol=0, atol=1e-6)
            else:
                assert not counts[b, j].any()


def test_the_now_slot_counts_from_its_moment_and_events_shift_right() -> None:
    tokens = hand_tokens()
    # chunk 0..3 of user 1 (events 0, 1, 2) with now between events 1 and 2: slots 0, 1, now, 2
    now = np.array([tokens.timestamp[1] + DAY])
    counts, valid = activity_labels(tokens, events_by_type(tokens, 5), np.array([0]), np.array([3]), 14.0, 4, now=now)
    assert valid.tolist() == [[True, True, True, True]]
    np.testing.assert_allclose(np.expm1(counts[0]), [EXPECTED[0], EXPECTED[1], [1, 1, 0, 0, 0], EXPECTED[2]], atol=1e-5)


def test_counts_match_a_brute_force_scan(window: InputWindow) -> None:
    tokens = tokenize(window, hash_rows=1024, price_buckets=100)
    by_type = events_by_type(tokens, 5)
    users = np.arange(min(len(tokens.client_ids), 40))
    start, end = tokens.offsets[users], tokens.offsets[users + 1]
    width = int((end - start).max())
    counts, valid = activity_labels(tokens, by_type, start, end, 3.0, width)
    for b, u in enumerate(users):
        for j, g in enumerate(range(start[b], end[b])):
            horizon = tokens.timestamp[g] + 3 * DAY
            assert valid[b, j] == (horizon <= tokens.now)
            if valid[b, j]:
                future = [i for i in range(g + 1, end[b]) if tokens.timestamp[i] <= horizon]
                want = np.bincount(tokens.event_type[future], minlength=5)
                np.testing.assert_allclose(np.expm1(counts[b, j]), want, atol=1e-3)
    assert not valid[np.arange(width)[None] >= (end - start)[:, None]].any()  # padding

