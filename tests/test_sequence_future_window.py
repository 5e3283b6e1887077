"""Future-window objective of the sequential encoder: labels, cutoff, padding, switch, training (with activity's)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from handmade_window import CUTOFF, events_frame, handmade_window
from test_sequence import BEFORE, TINY, assert_resumes_exactly, fit, one_thread, window  # noqa: F401 (fixtures)

from ubp.ablation import variants
from ubp.data.window import InputWindow
from ubp.encoders.sequence.config import make_config
from ubp.encoders.sequence.future import future_labels, future_window
from ubp.encoders.sequence.model import SequenceModel
from ubp.encoders.sequence.config import OBJECTIVES
from ubp.encoders.sequence.objectives import objective_losses, vocabulary_tensors
from ubp.encoders.sequence.tokens import item_vocabulary, make_batch, tokenize, tokenize_frame
from ubp.recipe import BlockSpec, Recipe
from ubp.training.loop import weighted_loss

# (client, timestamp, type, sku | url | query token); tokenize orders them by client then time: indices 0..6
ROWS = [
    (1, "2024-01-01 00:00:00", "page_visit", 900),  # 0
    (1, "2024-01-05 12:00:00", "search_query", 7),  # 1: no id, never a label
    (1, "2024-01-15 00:00:00", "add_to_cart", 1),  # 2: exactly 14 days after 0: in 0's future
    (1, "2024-01-15 00:00:01", "product_buy", 2),  # 3: one second later: not in 0's future
    (1, "2024-02-10 00:00:00", "page_visit", 901),  # 4
    (2, "2024-01-02 00:00:00", "page_visit", 902),  # 5: another user, right after 4 in the flat arrays
    (2, "2024-01-03 00:00:00", "add_to_cart", 3),  # 6
]
EXPECTED = [{2}, {2, 3}, {3}, set(), set(), {6}, set()]  # id-bearing events in each event's future


def hand_tokens():
    return tokenize_frame(events_frame(ROWS).collect(), hash_rows=1024, price_buckets=100)


def future_sets(window, n: int) -> list[set[int]]:
    """Id-bearing events in each event's future range, read off the window's index arrays."""
    ranges = [(window.ids_before[g + 1], window.ids_before[window.end[g]]) for g in range(n)]
    return [set(window.id_events[a:b].tolist()) for a, b in ranges]


def drawn_events(tokens, window, start, length, draws: int = 60) -> list[list[set[int]]]:
    """For each chunk position, the events whose id rows were drawn as labels (ids identify events here)."""
    seen = [[set() for _ in range(int(length.max()))] for _ in start]
    for seed in range(draws):
        labels, valid = future_labels(window, tokens.ids, start, length, torch.Generator().manual_seed(seed))
        for b, j in zip(*np.nonzero(valid.numpy())):
            match = np.flatnonzero((tokens.ids == labels[b, j].numpy()).all(axis=1))
            assert len(match) == 1
            seen[b][j].add(int(match[0]))
    return seen


def test_future_sets_match_hand_computed() -> None:
    tokens = hand_tokens()
    assert tokens.event_type.tolist() == [3, 4, 1, 0, 3, 3, 1]  # the order the indices above assume
    window = future_window(tokens, days=14.0)
    assert future_sets(window, 7) == EXPECTED
    assert future_sets(future_window(tokens, days=14.0 + 1 / 86400), 7)[0] == {2, 3}  # one second more


def test_future_ends_match_a_brute_force_scan(window: InputWindow) -> None:
    tokens = tokenize(window, hash_rows=1024, price_buckets=100)
    end = future_window(tokens, days=3.0).end
    horizon = tokens.timestamp + 3 * 86_400_000_000
    for u in range(len(tokens.client_ids)):
        lo, hi = tokens.offsets[u], tokens.offsets[u + 1]
        for g in range(lo, hi):
            later = [i for i in range(g + 1, hi) if tokens.timestamp[i] > horizon[g]]
            assert end[g] == (later[0] if later else hi)


def test_windows_without_ids_or_events_have_no_labels(tmp_path: Path) -> None:
    searches = [(1, "2024-02-20 10:00:00", "search_query", 3), (1, "2024-02-21 10:00:00", "search_query", 4)]
    tokens = tokenize(handmade_window(tmp_path, rows=searches, relevant=np.array([1])), 1024, 100)
    labels, valid = future_labels(future_window(tokens, 14.0), tokens.ids, np.array([0]), np.array([2]),
                                  torch.Generator())
    assert labels.shape == (1, 2, 6) and not valid.any()
    empty = handmade_window(tmp_path / "empty", rows=[], relevant=np.array([1]))
    out = fit(empty, max_steps=2, future_window_weight=1.0).transform(empty, np.array([1], dtype=np.int64))
    assert np.isfinite(out).all()


def test_labels_come_from_the_whole_history_not_the_chunk() -> None:
    tokens = hand_tokens()
    window = future_window(tokens, days=14.0)
    start, length = np.array([0, 1, 5]), np.array([2, 4, 2])  # chunks 0..1 and 1..4 of user 1, all of user 2
    seen = drawn_events(tokens, window, start, length)
    assert seen[0][:2] == [{2}, {2, 3}]  # events 2 and 3 lie beyond the first chunk's end
    assert seen[1] == [{2, 3}, {3}, set(), set()]
    assert seen[2] == [{6}, set(), set(), set()]  # padding positions: no label
    valid = future_labels(window, tokens.ids, start, length, torch.Generator())[1]
    assert valid.tolist() == [[True, True, False, False], [True, True, False, False], [True, False, False, False]]
    labels, wide = future_labels(window, tokens.ids, start, length, torch.Generator(), width=6)  # a GPU's padding
    assert labels.shape == (3, 6, 6) and wide[:, :4].tolist() == valid.tolist() and not wide[:, 4:].any()


def test_labels_never_reach_past_the_cutoff(tmp_path: Path) -> None:
    rows = [
        (1, "2024-02-25 00:00:00", "page_visit", 900),
        (1, "2024-02-29 23:59:59", "add_to_cart", 1),
        (1, "2024-03-01 00:00:00", "product_buy", 4),  # at the cutoff
        (1, "2024-03-05 00:00:00", "page_visit", 905),  # after it
    ]
    window = handmade_window(tmp_path, rows=rows, relevant=np.array([1]))
    assert window.cutoff == CUTOFF
    tokens = tokenize(window, hash_rows=1024, price_buckets=100)
    assert tokens.n_events == 2 and (tokens.timestamp < int(CUTOFF.timestamp() * 1e6)).all()
    future = future_window(tokens, days=14.0)
    assert future_sets(future, 2) == [{1}, set()]  # the last visible event's future is empty, not the cutoff's buy
    seen = drawn_events(tokens, future, np.array([0]), np.array([2]))
    assert seen == [[{1}, set()]]


def test_padding_and_positions_without_future_never_reach_the_loss() -> None:
    cfg = make_config("tiny", **TINY, **BEFORE, future_window_weight=1.0, hash_rows=1024)  # hand-made batches: no now token
    tokens = hand_tokens()
    vocab = vocabulary_tensors(*item_vocabulary(tokens, cfg.hash_rows))
    window = future_window(tokens, cfg.future_window_days)
    torch.manual_seed(0)
    model = SequenceModel(cfg).eval()
    start, first = np.array([0, 5]), torch.tensor([True, True])

    def future_loss(length: np.ndarray, garbage: bool = False) -> torch.Tensor:
        batch = make_batch(tokens, start, start + length)
        labels, valid = future_labels(window, tokens.ids, start, length, torch.Generator().manual_seed(1))
        if garbage:  # invalid positions (padding, empty future) hold junk ids
            labels = torch.where(valid[..., None], labels, torch.randint(1, 1024, labels.shape))
        batch.update(future_ids=labels, future_valid=valid)
        return objective_losses(model, model(batch), batch, first, cfg, vocab, torch.Generator())["future_window"]

    exact = future_loss(np.array([5, 2]))
    assert exact > 0
    torch.testing.assert_close(future_loss(np.array([5, 2]), garbage=True), exact, rtol=0, atol=0)
    # Only positions 0..2 (user 1) and 0 (user 2) have a future: without them the loss is zero.
    assert float(future_loss(np.array([0, 0])).detach()) == 0.0


def test_weight_zero_changes_nothing(window: InputWindow, monkeypatch: pytest.MonkeyPatch) -> None:
    seen = []
    base = fit(window, max_steps=3, callback=lambda s, losses: seen.append(set(losses)))
    assert seen[-1] == {"nip", "nup", "netp", "tdp"} and base.model_.future_query is None
    import ubp.encoders.sequence.train as train_module

    def never(*args, **kwargs):
        raise AssertionError("future-window labels built with the objective off")

    monkeypatch.setattr(train_module, "future_window", never)
    other_days = fit(window, max_steps=3, future_window_days=3.0).model_.state_dict()
    for name, value in base.model_.state_dict().items():
        torch.testing.assert_close(other_days[name], value, rtol=0, atol=0, msg=name)


@pytest.mark.parametrize("objective, head", [("future_window", "future_query"), ("activity", "next_activity")])
def test_fit_with_an_optional_objective_trains_it_and_resumes_exactly(window: InputWindow, tmp_path: Path, objective: str,
                                                                      head: str) -> None:
    options = {"max_steps": 6, "checkpoint_every": 3, "warmup_steps": 2, f"{objective}_weight": 0.5}
    logged: list[dict] = []
    unbroken = fit(window, work_dir=tmp_path / "a", callback=lambda s, losses: logged.append(losses), **options)
    assert set(logged[0]) == {"nip", "nup", "netp", "tdp", objective}
    assert all(math.isfinite(float(v[objective])) and float(v[objective]) > 0 for v in logged)
    cfg = unbroken.config
    weights = {name: getattr(cfg, f"{name}_weight") for name in OBJECTIVES}
    assert float(weighted_loss(logged[0], weights)) == pytest.approx(
        float(sum(v for k, v in logged[0].items() if k != objective) + 0.5 * logged[0][objective])
    )
    assert getattr(unbroken.model_, head) is not None and getattr(fit(window, max_steps=1).model_, head) is None
    assert_resumes_exactly(window, tmp_path / "b", unbroken.model_.state_dict(), 4, **options)


def test_ablation_lists_future_window_only_when_on() -> None:
    def names(**options) -> list[str]:
        return list(variants(Recipe(blocks=(BlockSpec("sequence", options={"preset": "tiny", **options}),))))

    assert "sequence without FUTURE_WINDOW" not in names()
    on = variants(Recipe(blocks=(BlockSpec("sequence", options={"preset": "tiny", "future_window_weight": 0.5}),)))
    assert on["sequence without FUTURE_WINDOW"].blocks[0].options["future_window_weight"] == 0.0
    assert "sequence without NIP" not in names(nip_weight=0.0)
