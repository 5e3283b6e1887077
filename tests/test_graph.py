"""The TwHIN graph block: edges, in-batch BCE by hand, fallbacks, determinism, save/load, resume."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from handmade_window import handmade_window
from ubp.encoders import create
from ubp.encoders.base import Run
from ubp.encoders.graph.edges import lookup, read_edges, user_table
from ubp.encoders.graph.encoder import GraphEncoder
from ubp.encoders.graph.model import TwHIN, in_batch_bce
from stand_ins import assert_same_weights, fit_killed_then_resumed

SMALL = dict(dim=8, max_users=0, epochs=3, batch_size=3, checkpoint_every=1)
RUN = Run(seed=0, show_progress=False)


def log_sigmoid(x: float) -> float:
    return -math.log(1 + math.exp(-x))


def test_in_batch_bce_matches_hand_computation():
    logits = torch.tensor([[1.0, 0.0], [-1.0, 2.0]])
    none = torch.zeros(2, 2, dtype=torch.bool)
    expected = -0.5 * (log_sigmoid(1) + log_sigmoid(-0.0) + log_sigmoid(2) + log_sigmoid(1))
    assert float(in_batch_bce(logits, none)) == pytest.approx(expected, rel=1e-6)
    # a pair whose target is the positive's own is no negative: only the diagonal remains
    same = torch.tensor([[False, True], [True, False]])
    assert float(in_batch_bce(logits, same)) == pytest.approx(-0.5 * (log_sigmoid(1) + log_sigmoid(2)), rel=1e-6)


def test_score_is_cosine_of_user_and_item_plus_relation():
    model = TwHIN(n_users=2, n_items=3, n_relations=2, dim=4, learn_scale=False)
    logits = model(torch.tensor([0, 1]), torch.tensor([2, 0]), torch.tensor([1, 0]))
    u = model.users.weight[1]
    t = model.items.weight[0] + model.relations.weight[0]
    assert float(logits[1, 1].detach()) == pytest.approx(float(F.cosine_similarity(u, t, dim=0).detach()), rel=1e-5)


def test_edges_are_distinct_cart_and_buy_pairs_before_the_cutoff(tmp_path):
    window = handmade_window(tmp_path)
    edges = read_edges(window)
    # relation 0 = add_to_cart, 1 = product_buy; client 5's buy at the cutoff is invisible
    expected = [(1, 1, 0), (1, 1, 1), (1, 2, 0), (1, 2, 1), (1, 3, 0), (1, 3, 1), (2, 4, 0), (5, 4, 0)]
    assert list(edges.iter_rows()) == expected
    assert user_table(edges, np.array([1, 2, 3, 4]), max_users=0).tolist() == [1, 2]
    assert user_table(edges, np.array([1, 2, 3, 4]), max_users=3).tolist() == [1, 2, 5]
    assert user_table(edges, np.array([5]), max_users=1).tolist() == [5]  # relevant first, then activity


def test_lookup_handles_arbitrary_int64_ids():
    vocab = np.array([-(2**63), -5, 7, 2**62], dtype=np.int64)
    ids = np.array([7, 8, 2**63 - 1, -(2**63), -5], dtype=np.int64)
    assert lookup(vocab, ids).tolist() == [2, -1, -1, 0, 1]
    assert lookup(np.empty(0, np.int64), ids).tolist() == [-1] * 5


def test_fit_transform_fallbacks_determinism_and_save_load(tmp_path):
    window = handmade_window(tmp_path)
    enc = create("graph", **SMALL).fit(window, RUN)
    ids = np.array([1, 2, 3, 4, 5, 1], dtype=np.int64)
    out = enc.transform(window, ids)
    assert out.shape == (6, 8) and out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out[[0, 1, 4]], axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(out[2:4], 0.0)  # no cart or buy edge: zero rows
    np.testing.assert_array_equal(out[0], out[5])
    # client 5 is outside the user table: the normalised target of its one edge (sku 4, cart)
    with torch.no_grad():
        t = enc.model_.items.weight[lookup(enc.items_, np.array([4]))[0]] + enc.model_.relations.weight[0]
    np.testing.assert_allclose(out[4], F.normalize(t, dim=0).numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(create("graph", **SMALL).fit(window, RUN).transform(window, ids), out)
    enc.save(tmp_path / "graph")
    np.testing.assert_array_equal(GraphEncoder.load(tmp_path / "graph").transform(window, ids), out)


def test_window_without_cart_or_buy_gives_zero_rows(tmp_path):
    rows = [(1, "2024-02-20 10:00:00", "page_visit", 900), (2, "2024-02-21 10:00:00", "search_query", 3)]
    window = handmade_window(tmp_path, rows=rows)
    out = create("graph", **SMALL).fit(window, RUN).transform(window, np.array([1, 2, 3]))
    np.testing.assert_array_equal(out, np.zeros((3, 8), np.float32))


def test_training_separates_two_communities(tmp_path):
    """Users 0..19 touch items 100..104, users 20..39 items 200..204: same-side users end up closer."""
    rows = [
        (u, f"2024-02-{1 + k:02d} 12:00:00", "add_to_cart", (100 if u < 20 else 200) + (u + k) % 5)
        for u in range(40)
        for k in range(3)
    ]
    window = handmade_window(tmp_path, rows=rows, relevant=np.arange(40), events_per_shard=1000)
    cfg = dict(dim=16, max_users=0, epochs=20, batch_size=16, lr=0.05)
    out = create("graph", **cfg).fit(window, RUN).transform(window, np.arange(40))
    sim = out @ out.T
    same = np.add.outer(np.arange(40) < 20, np.arange(40) < 20) != 1
    assert sim[same].mean() > sim[~same].mean() + 0.2


def test_resume_gives_the_weights_of_an_uninterrupted_run(tmp_path, monkeypatch):
    window = handmade_window(tmp_path)
    full = create("graph", **SMALL).fit(window, Run(seed=2, work_dir=tmp_path / "a", show_progress=False))
    run = Run(seed=2, work_dir=tmp_path / "b", show_progress=False)
    resumed, n_saves = fit_killed_then_resumed(
        lambda: create("graph", **SMALL).fit(window, run), monkeypatch, kill_at=2
    )
    assert n_saves == 6  # 7 edges of table users, batches of 3 → 2 steps per epoch, 3 epochs
    assert_same_weights(full.model_, resumed.model_)
