"""The `dcn` block: PLE, cross layer and losses by hand, the inner split's labels, no leakage, fit/save/resume."""

from __future__ import annotations

import math
from datetime import datetime
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch

from handmade_window import CUTOFF, EVENTS, RELEVANT, events_frame, handmade_window
from ubp.encoders import create
from ubp.config import ConfigError
from ubp.encoders.base import Run
from ubp.encoders.dcn.encoder import DcnEncoder
from ubp.encoders.dcn.inner_split import inner_labels, write_inner_window
from ubp.encoders.dcn.losses import dcn_loss, head_bce
from ubp.encoders.dcn.model import CrossLayer, PiecewiseLinear, quantile_edges
from ubp.encoders.dcn.views import keep_mask, masked_window
from ubp.encoders.registry import REGISTRY, block_options
from stand_ins import EventCounts, assert_same_weights, fit_killed_then_resumed

SMALL = dict(
    input_options={"n_clusters": 3}, contrastive=True, n_bins=4, ranks=[4, 2, 2], widths=[4, 2, 2], head=[8],
    epochs=2, batch_size=2, checkpoint_every=1,
)
IDS = np.array([4, 1, 5, 999, 1, 2, 3], dtype=np.int64)  # unknown and repeated ids too


def quiet(seed: int = 0, work_dir: Path | None = None) -> Run:
    return Run(seed=seed, work_dir=work_dir, show_progress=False)


# ----- pieces by hand -----------------------------------------------------------------------------
def test_quantile_edges_drop_empty_bins_and_skip_missing():
    x = np.array(
        [[0, 0, 7, np.nan], [1, 0, 7, np.nan], [2, 0, 7, np.nan], [3, 0, 7, np.nan], [4, 4, 7, np.nan]], np.float32
    )
    lo, hi, valid = quantile_edges(x, 4)
    np.testing.assert_array_equal(lo[0], [0, 1, 2, 3])
    np.testing.assert_array_equal(hi[0], [1, 2, 3, 4])
    assert valid[0].all()
    assert valid[1].tolist() == [False, False, False, True] and (lo[1, 3], hi[1, 3]) == (0, 4)  # zero-inflated
    assert not valid[2].any() and not valid[3].any()  # constant, all missing


def test_quantile_edges_a_few_columns_at_a_time_equal_all_at_once(monkeypatch):
    import ubp.encoders.dcn.model as dcn_model

    rng = np.random.default_rng(0)
    x = rng.poisson(0.5, (500, 7)).astype(np.float32)
    x[rng.random(x.shape) < 0.2] = np.nan
    whole = quantile_edges(x, 8)
    monkeypatch.setattr(dcn_model, "QUANTILE_COLUMNS", 2)
    for got, expected in zip(quantile_edges(x, 8), whole):
        np.testing.assert_array_equal(got, expected)


def test_ple_codes_match_hand_computation():
    lo = np.array([[0.0, 1.0, 0.0]], np.float32)
    hi = np.array([[1.0, 3.0, 1.0]], np.float32)
    valid = np.array([[True, True, False]])
    ple = PiecewiseLinear(lo, hi, valid)
    codes = ple(torch.tensor([[2.0], [-1.0], [5.0], [0.25], [float("nan")]]))[:, 0]
    expected = [
        [1, 0.5, 0, 0],  # inside the second bin
        [0, 0, 0, 0],  # below every bin
        [1, 1, 0, 0],  # above every bin
        [0.25, 0, 0, 0],
        [0, 0, 0, 1],  # missing: only the flag
    ]
    np.testing.assert_allclose(codes.numpy(), expected)


def test_cross_layer_is_x0_times_low_rank_map_plus_x():
    torch.manual_seed(0)
    layer = CrossLayer(3, 2)
    x0, x = torch.tensor([[1.0, -2.0, 0.5]]), torch.tensor([[0.3, 0.1, -1.0]])
    v, u, b = layer.v.weight.detach(), layer.u.weight.detach(), layer.u.bias.detach()  # (2, 3), (3, 2), (3,)
    manual = [x0[0, i] * (sum(u[i, r] * sum(v[r, j] * x[0, j] for j in range(3)) for r in range(2)) + b[i]) + x[0, i]
              for i in range(3)]
    np.testing.assert_allclose(layer(x0, x)[0].detach().numpy(), torch.stack(manual).numpy(), rtol=1e-6)


def test_head_bce_averages_tasks_and_skips_unweighted_labels():
    logits = torch.tensor([[0.0, math.log(3.0), 0.0], [5.0, 0.0, 0.0]])
    labels = torch.tensor([[1.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    weights = torch.tensor([[1.0, 1.0, 1.0], [0.0, 1.0, 1.0]])  # row 2's churn does not count
    tasks = [slice(0, 1), slice(1, 3)]
    churn = math.log(2)  # sigmoid(0) vs 1
    # propensity: −log σ(log 3) = log(4/3); row 2: −log(1−σ(0)) = log 2, −log σ(0) = log 2; row 1 col 3: log 2
    prop = (math.log(4 / 3) + 3 * math.log(2)) / 4
    assert float(head_bce(logits, labels, weights, tasks)) == pytest.approx((churn + prop) / 2, rel=1e-6)
    no_churn = weights.clone()
    no_churn[:, 0] = 0
    assert float(head_bce(logits, labels, no_churn, tasks)) == pytest.approx(prop, rel=1e-6)


def test_dcn_loss_adds_weighted_info_nce():
    logits, labels, weights = torch.zeros(2, 1), torch.ones(2, 1), torch.ones(2, 1)
    eye = torch.eye(2)
    # InfoNCE of identical orthogonal views at τ = 0.5: −log(e² / (e² + 1)) = log(1 + e⁻²)
    expected = math.log(2) + 0.3 * math.log(1 + math.exp(-2))
    got = dcn_loss(logits, labels, weights, [slice(0, 1)], (eye, eye), lambda_con=0.3, temperature=0.5)
    assert float(got) == pytest.approx(expected, rel=1e-6)
    assert float(dcn_loss(logits, labels, weights, [slice(0, 1)], None, 0.3, 0.5)) == pytest.approx(math.log(2))


# ----- the inner split ----------------------------------------------------------------------------
B = "product_buy"
LABEL_ROWS = [
    *EVENTS,
    (2, "2024-02-01 00:00:00", B, 2),  # before the inner cutoff (02-16): user 2 is active, sku 2 a target
    (3, "2024-02-16 00:00:00", B, 3),  # exactly at the inner cutoff: a label, not a feature
]


def tamper(window, rows) -> None:
    """Append `rows` (at or after the cutoff) to every stream file, as a buggy writer might."""
    extra = events_frame(rows).collect()
    for shard in window.shards:
        pl.concat([pl.read_parquet(shard), extra]).write_parquet(shard)


FUTURE = [(2, "2024-03-01 00:00:00", B, 2), (4, "2024-03-05 00:00:00", B, 1), (1, "2024-03-02 00:00:00", "page_visit", 7)]


def test_inner_labels_by_hand_and_never_from_the_future(tmp_path):
    window = handmade_window(tmp_path, rows=LABEL_ROWS)
    tamper(window, FUTURE)
    inner = write_inner_window(window, 14, tmp_path / "inner")
    assert inner.cutoff == datetime(2024, 2, 16)
    assert inner.stream().select(pl.col("timestamp").max()).collect().item() < inner.cutoff
    assert inner.event_counts["product_buy"] == 2
    got = inner_labels(window, inner, np.array([1, 2, 3, 4, 1]), 100, ("churn", "sku", "category"))
    assert got.skus.tolist() == [2, 3] and got.categories.tolist() == [10, 20]  # ties go to the smaller id
    # columns: churn | sku 2, sku 3 | category 10, category 20
    expected = [[0, 1, 0, 1, 0], [1, 0, 0, 0, 0], [0, 0, 1, 0, 1], [1, 0, 0, 0, 0], [0, 1, 0, 1, 0]]
    np.testing.assert_array_equal(got.labels, expected)
    np.testing.assert_array_equal(got.weights[:, 0], [1, 1, 0, 0, 1])  # churn counts for pre-cutoff buyers only
    assert (got.weights[:, 1:] == 1).all()
    assert got.tasks == [slice(0, 1), slice(1, 3), slice(3, 5)]


def test_inner_labels_of_conversion_and_price_in_the_order_asked(tmp_path):
    window = handmade_window(tmp_path, rows=LABEL_ROWS)
    inner = write_inner_window(window, 14, tmp_path / "inner")
    got = inner_labels(window, inner, np.array([1, 2, 3, 4, 1]), 100, tasks=("price", "conversion", "churn"))
    assert got.tasks == [slice(0, 100), slice(100, 101), slice(101, 102)]
    price = np.zeros((5, 100))
    price[[0, 0, 2, 4, 4], [5, 15, 50, 5, 15]] = 1  # user 1 bought skus 1 and 2 (prices 5, 15), user 3 sku 3 (50)
    np.testing.assert_array_equal(got.labels[:, :100], price)
    np.testing.assert_array_equal(got.labels[:, 100], [0, 1, 0, 1, 0])  # conversion: the churn label ...
    np.testing.assert_array_equal(got.labels[:, 101], got.labels[:, 100])
    np.testing.assert_array_equal(got.weights[:, 100], [1, 1, 1, 1, 1])  # ... counted for every client
    np.testing.assert_array_equal(got.weights[:, 101], [1, 1, 0, 0, 1])


@pytest.mark.parametrize("tasks", [[], ["churn", "churn"], ["novelty"]])
def test_inner_tasks_are_checked_when_the_recipe_is_read(tasks):
    with pytest.raises(ConfigError, match="dcn.inner_tasks"):
        block_options("dcn", {"inner_tasks": tasks})


def test_stacked_inner_splits_train_on_every_split_with_events(tmp_path, monkeypatch):
    import ubp.encoders.dcn.encoder as dcn_encoder

    window = handmade_window(tmp_path, rows=LABEL_ROWS)
    seen = []
    real = dcn_encoder.fit_rows
    monkeypatch.setattr(dcn_encoder, "fit_rows", lambda *a: seen.append(a[-1]) or real(*a))
    tasks = ["conversion", "sku"]
    # splits end 02-16, 02-02, 01-19, 01-05: the last has no event (the first is on 01-10)
    create("dcn", **SMALL, inner_tasks=tasks, inner_splits=4).fit(window, quiet(work_dir=tmp_path / "w"))
    labels = seen[0][1].numpy()
    inner1 = write_inner_window(window, 14, tmp_path / "i1")
    inner2 = write_inner_window(window, 28, tmp_path / "i2")
    inner3 = write_inner_window(window, 42, tmp_path / "i3")
    first = inner_labels(window, inner1, RELEVANT, 100, tasks)
    second = inner_labels(inner1, inner2, RELEVANT, 100, tasks, (first.categories, first.skus))
    third = inner_labels(inner2, inner3, RELEVANT, 100, tasks, (first.categories, first.skus))
    np.testing.assert_array_equal(labels, np.concatenate([first.labels, second.labels, third.labels]))
    # the second split's horizon [02-02, 02-16): user 1 bought sku 3 (targets: skus 2 and 3 of the first)
    np.testing.assert_array_equal(second.labels, [[0, 0, 1], [1, 0, 0], [1, 0, 0], [1, 0, 0]])


def test_future_rows_in_the_stream_change_nothing(tmp_path):
    clean = handmade_window(tmp_path / "a", rows=LABEL_ROWS)
    dirty = handmade_window(tmp_path / "b", rows=LABEL_ROWS)
    tamper(dirty, FUTURE)
    out_clean = create("dcn", **SMALL).fit(clean, quiet(1)).transform(clean, IDS)
    out_dirty = create("dcn", **SMALL).fit(dirty, quiet(1)).transform(dirty, IDS)
    np.testing.assert_array_equal(out_clean, out_dirty)


# ----- views --------------------------------------------------------------------------------------
def test_event_views_drop_a_fixed_share_deterministically(tmp_path):
    keys = np.arange(20_000)
    kept = keep_mask(keys, 0.3, salt=5)
    assert abs(kept.mean() - 0.7) < 0.02
    np.testing.assert_array_equal(kept, keep_mask(keys, 0.3, salt=5))
    assert not np.array_equal(kept, keep_mask(keys, 0.3, salt=6))
    window = handmade_window(tmp_path)
    rows = lambda w: w.stream().collect().sort("client_id", "timestamp", "event_type")  # noqa: E731
    a = rows(masked_window(window, 0.5, seed=0, view=0, data_dir=tmp_path / "v0"))
    again = rows(masked_window(window, 0.5, seed=0, view=0, data_dir=tmp_path / "v0bis"))
    assert a.equals(again) and 0 < len(a) < window.n_events
    key = ["client_id", "timestamp", "event_type"]  # unique in the hand-written log
    assert len(a.join(rows(window), on=key, how="anti")) == 0  # a subset of the original events
    assert rows(masked_window(window, 0.0, seed=0, view=1, data_dir=tmp_path / "v1")).equals(rows(window))


# ----- the block ----------------------------------------------------------------------------------
def test_fit_is_deterministic_and_survives_save_load(tmp_path):
    window = handmade_window(tmp_path)  # no remove_from_cart at all: an absent event type
    assert "remove_from_cart" in window.absent_event_types
    enc = create("dcn", **SMALL).fit(window, quiet(3))
    out = enc.transform(window, IDS)
    assert out.shape == (7, 8) and out.dtype == np.float32 and np.isfinite(out).all()
    np.testing.assert_array_equal(out[1], out[4])
    np.testing.assert_array_equal(create("dcn", **SMALL).fit(window, quiet(3)).transform(window, IDS), out)
    assert not np.array_equal(create("dcn", **SMALL).fit(window, quiet(4)).transform(window, IDS), out)
    enc.save(tmp_path / "dcn")
    np.testing.assert_array_equal(DcnEncoder.load(tmp_path / "dcn").transform(window, IDS), out)


def test_resume_gives_the_weights_of_an_uninterrupted_run(tmp_path, monkeypatch):
    window = handmade_window(tmp_path)
    full = create("dcn", **SMALL).fit(window, quiet(1, tmp_path / "a"))
    resumed, n_saves = fit_killed_then_resumed(
        lambda: create("dcn", **SMALL).fit(window, quiet(1, tmp_path / "b")), monkeypatch, kill_at=3
    )
    # 2 epochs of 2 inner splits × 4 clients in batches of 2: 3 steps before the interruption,
    # only the remaining 5 after it
    assert n_saves == 8
    assert_same_weights(full.model_, resumed.model_)


def test_sequence_block_joins_through_its_mlp(tmp_path, monkeypatch):
    monkeypatch.setitem(REGISTRY, "test_event_counts", EventCounts)
    window = handmade_window(tmp_path)
    enc = create("dcn", **SMALL, sequence_block="test_event_counts", sequence_dim=3).fit(window, quiet())
    assert enc.model_.seq[0].in_features == 5 and enc.model_.cross[0].v.in_features == 2 * len(enc.input_.columns_) + 3
    out = enc.transform(window, IDS)
    enc.save(tmp_path / "dcn")
    np.testing.assert_array_equal(DcnEncoder.load(tmp_path / "dcn").transform(window, IDS), out)


@pytest.mark.parametrize("options", [{"views": "columns"}, {"contrastive": False}])  # SMALL: event views
def test_other_view_modes_and_a_window_without_buys(tmp_path, options):
    visits = [r for r in EVENTS if r[2] == "page_visit"]  # no buy at all: no propensity target, no churn label
    window = handmade_window(tmp_path, rows=visits)
    out = create("dcn", **{**SMALL, **options}).fit(window, quiet()).transform(window, IDS)
    assert out.shape == (7, 8) and np.isfinite(out).all()


def test_bad_options_are_errors():
    with pytest.raises(ConfigError, match="views"):
        create("dcn", views="dropout")
    with pytest.raises(ConfigError, match="ranks"):
        create("dcn", ranks=[4, 2], widths=[4])
    with pytest.raises(ConfigError, match="lambda_kon"):
        create("dcn", lambda_kon=1.0)
    assert CUTOFF == datetime(2024, 3, 1)  # the hand-computed inner cutoff above assumes it
