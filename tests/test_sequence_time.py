"""The sequence block sees the time to the cutoff, its whole history and items by content."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import torch
from handmade_window import EVENTS, handmade_window
from test_sequence import BEFORE, TINY, fit, one_thread, window  # noqa: F401 (fixtures)

from ubp.data.window import InputWindow
from ubp.encoders.sequence.config import make_config
from ubp.encoders.sequence.encoder import embed_clients
from ubp.encoders.sequence.model import SequenceModel
from ubp.encoders.sequence.tokens import history_chunks, make_batch, tokenize
from ubp.encoders.sequence.train import TrainingData
from ubp.layout import US_PER_DAY, EventType

TWO_WEEKS = 14 * US_PER_DAY  # same weekdays and hours: only the distance to the cutoff moves


def _model(**options) -> tuple:
    cfg = make_config("tiny", **{**TINY, **options})
    torch.manual_seed(0)
    return cfg, SequenceModel(cfg).eval()


def test_shifting_a_history_in_time_or_embedding_it_later_changes_the_embedding(window: InputWindow) -> None:
    encoder = fit(window, max_steps=4)
    cfg, model = encoder.config, encoder.model_
    tokens = tokenize(window, cfg.hash_rows, cfg.price_buckets)
    ids = tokens.client_ids
    rows = embed_clients(model, tokens, ids, cfg)
    earlier = dataclasses.replace(tokens, timestamp=np.asarray(tokens.timestamp) - TWO_WEEKS)
    later = dataclasses.replace(tokens, cutoff=tokens.now + TWO_WEEKS)  # a saved model embedding a later day
    for moved in (earlier, later):
        assert (np.abs(embed_clients(model, moved, ids, cfg) - rows).max(axis=1) > 1e-4).all()
    # without the time inputs, a history moved by two weeks looks exactly the same
    cfg0, model0 = _model(**BEFORE)
    np.testing.assert_allclose(embed_clients(model0, earlier, ids, cfg0), embed_clients(model0, tokens, ids, cfg0),
                               rtol=0, atol=1e-6)


def test_same_events_different_last_activity_dates_give_different_rows(tmp_path: Path) -> None:
    """Client 8 did what client 1 did, two weeks earlier: only its recency differs."""
    earlier = [(8, str(datetime.fromisoformat(t) - timedelta(days=14)), kind, value)
               for client, t, kind, value in EVENTS if client == 1]
    hand = handmade_window(tmp_path, rows=[*EVENTS, *earlier], relevant=np.array([1, 8]))
    ids = np.array([1, 8], dtype=np.int64)
    cfg, model = _model()
    tokens = tokenize(hand, cfg.hash_rows, cfg.price_buckets)
    rows = embed_clients(model, tokens, ids, cfg)
    assert np.abs(rows[0] - rows[1]).max() > 1e-4
    cfg0, model0 = _model(**BEFORE)
    old = embed_clients(model0, tokens, ids, cfg0)
    np.testing.assert_allclose(old[0], old[1], rtol=0, atol=1e-6)


def test_now_token_carries_the_gap_to_the_cutoff_and_every_event_its_days_to_it(window: InputWindow) -> None:
    tokens = tokenize(window, 1024, 100)
    u = int(np.argmax(tokens.lengths))
    start, end = tokens.offsets[u : u + 1], tokens.offsets[u + 1 : u + 2]
    batch = make_batch(tokens, start, end, now=np.array([tokens.now]))
    n = int(end[0] - start[0])
    assert batch["length"].tolist() == [n + 1] and batch["is_now"][0].tolist() == [False] * n + [True]
    ts = np.asarray(tokens.timestamp[start[0] : end[0]])
    expected = np.log1p((tokens.now - ts) / US_PER_DAY).astype(np.float32)
    np.testing.assert_allclose(batch["log_until"][0, :n].numpy(), expected, rtol=1e-6)
    gap_hours = (tokens.now - ts[-1]) / 3.6e9
    np.testing.assert_allclose(float(batch["log_gap"][0, n]), np.log1p(gap_hours), rtol=1e-6)
    assert int(batch["ids"][0, n].abs().sum()) == 0 and not bool(batch["has_tokens"][0, n])


def test_training_puts_the_now_token_before_each_chunks_last_event(window: InputWindow) -> None:
    """The now state predicts the chunk's last event from a moment drawn between it and the event before."""
    cfg = make_config("tiny", **TINY)
    tokens = tokenize(window, cfg.hash_rows, cfg.price_buckets)
    data = TrainingData(tokens, cfg, seed=0, device=torch.device("cpu"))
    chunk = np.arange(len(data.start))[:cfg.batch_size]
    batch = data.batch(chunk, step=0)
    count = data.end[chunk] - data.start[chunk]
    for b, n in enumerate(count):
        assert batch["is_now"][b].nonzero().flatten().tolist() == [n - 1]
        last = data.end[chunk][b] - 1
        assert int(batch["event_type"][b, n]) == int(tokens.event_type[last])  # the target follows the now token
    again = data.batch(chunk, step=0)
    torch.testing.assert_close(again["log_gap"], batch["log_gap"])  # the drawn moments are a function of the step


def test_whole_history_covers_every_event_and_reads_the_last_chunk_out(window: InputWindow) -> None:
    cfg, model = _model(max_len=6)
    tokens = tokenize(window, cfg.hash_rows, cfg.price_buckets)
    user, start, end = history_chunks(tokens, cfg.max_len - 1, whole=True)
    assert np.bincount(user, weights=end - start).astype(int).tolist() == tokens.lengths.tolist()
    is_last = np.r_[user[1:] != user[:-1], True]
    np.testing.assert_array_equal(end[is_last], tokens.offsets[1:])
    d = cfg.width
    rows = embed_clients(model, tokens, tokens.client_ids, cfg)
    assert rows.shape == (len(tokens.client_ids), 12 * d)  # last, mean, and per event type a mean and a last state
    cfg_last = dataclasses.replace(cfg, whole_history=False, by_event_type=False)
    np.testing.assert_allclose(rows[:, :d], embed_clients(model, tokens, tokens.client_ids, cfg_last),
                               rtol=1e-5, atol=1e-6)
    # an early event of a long history moves the pooled parts only
    u = int(np.argmax(tokens.lengths))
    changed = np.asarray(tokens.event_type).copy()
    changed[tokens.offsets[u]] = (changed[tokens.offsets[u]] + 1) % 4
    moved = embed_clients(model, dataclasses.replace(tokens, event_type=changed), tokens.client_ids, cfg)
    np.testing.assert_allclose(moved[u, :d], rows[u, :d], rtol=1e-5, atol=1e-6)
    assert np.abs(moved[u, d : 2 * d] - rows[u, d : 2 * d]).max() > 1e-5


def test_by_event_type_reads_each_types_mean_and_last_state_over_the_whole_history(window: InputWindow) -> None:
    """The per-type parts equal a plain recomputation: every chunk run alone, the states after each
    event grouped by its type, their mean, and the state after the type's latest event."""
    cfg, model = _model(max_len=6)
    tokens = tokenize(window, cfg.hash_rows, cfg.price_buckets)
    rows = embed_clients(model, tokens, tokens.client_ids, cfg)
    d, n_types = cfg.width, len(EventType)
    user, start, end = history_chunks(tokens, cfg.max_len - 1, whole=True)
    sums, counts = np.zeros((len(rows), n_types, d)), np.zeros((len(rows), n_types))
    latest, last = np.full((len(rows), n_types), -1), np.zeros((len(rows), n_types, d))
    with torch.no_grad():
        for u, s, e in zip(user, start, end):
            batch = make_batch(tokens, np.array([s]), np.array([e]), now=np.array([tokens.now]))
            states = model(batch)[0, 1:].numpy()  # after each event; the now token's comes last
            for j, event in enumerate(range(s, e)):
                t = int(tokens.event_type[event])
                sums[u, t] += states[j]
                counts[u, t] += 1
                if event > latest[u, t]:
                    latest[u, t], last[u, t] = event, states[j]
    means = sums / np.maximum(counts, 1)[..., None]
    np.testing.assert_allclose(rows[:, 2 * d : 7 * d], means.reshape(len(rows), -1), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(rows[:, 7 * d :], last.reshape(len(rows), -1), rtol=1e-4, atol=1e-5)
    assert (counts == 0).any() and (counts > 0).sum() > len(rows)  # some types absent (zeros), most present


