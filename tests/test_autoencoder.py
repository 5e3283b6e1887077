"""The residual autoencoder block: loss terms by hand, noise schedule, fit/transform/save/resume."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import ubp.training
from handmade_window import handmade_window
from ubp.errors import UsageError
from ubp.encoders import create
from ubp.config import ConfigError
from ubp.encoders.autoencoder.encoder import AutoencoderEncoder
from ubp.encoders.autoencoder.losses import autoencoder_loss, info_nce, noise_sigma
from ubp.encoders.base import Run
from ubp.encoders.registry import REGISTRY
from stand_ins import EventCounts, assert_same_weights, fit_killed_then_resumed

SMALL = dict(input_block="test_event_counts", hidden=[8, 4], latent=3, epochs=3, batch_size=2, checkpoint_every=1)


@pytest.fixture
def window(tmp_path, monkeypatch):
    monkeypatch.setitem(REGISTRY, "test_event_counts", EventCounts)
    return handmade_window(tmp_path)


def test_noise_anneals_linearly_over_epochs():
    assert [round(noise_sigma(e, 5), 6) for e in range(5)] == [0.10, 0.08, 0.06, 0.04, 0.02]
    assert noise_sigma(0, 1) == 0.10
    assert noise_sigma(3, 3, 0.5, 0.1) == pytest.approx(0.1)  # past the last epoch: stays at the end value


def test_info_nce_matches_hand_computation():
    eye = torch.eye(2)
    # logits = I / τ: each direction is −log(e^{1/τ} / (e^{1/τ} + 1)) per row
    assert float(info_nce(eye, eye, 1.0)) == pytest.approx(math.log(1 + math.exp(-1)), rel=1e-6)
    assert float(info_nce(eye, eye, 0.5)) == pytest.approx(math.log(1 + math.exp(-2)), rel=1e-6)
    # b's rows both point along x (lengths differ: cosine ignores them): logits [[1, 1], [0, 0]]
    b = torch.tensor([[1.0, 0.0], [3.0, 0.0]])
    rows = math.log(2)  # both rows of a→b: two equal logits
    cols = 0.5 * (math.log(1 + math.exp(-1)) + math.log(1 + math.e))  # b→a: logits [1, 0] and [1, 0]
    assert float(info_nce(eye, b, 1.0)) == pytest.approx(0.5 * (rows + cols), rel=1e-6)


def test_autoencoder_loss_matches_hand_computation():
    x = torch.tensor([[1.0], [0.0]])
    recon = (torch.tensor([[0.0], [0.0]]), torch.tensor([[1.0], [1.0]]))  # MSE 0.5 each
    z = (torch.eye(2), torch.eye(2))  # InfoNCE log(1 + 1/e) at τ = 1, ‖z‖² = 1 per row
    expected = 0.5 + 0.5 * math.log(1 + math.exp(-1)) + 0.1 * 1.0
    got = autoencoder_loss(x, recon, z, lambda_con=0.5, lambda_l2=0.1, temperature=1.0)
    assert float(got) == pytest.approx(expected, rel=1e-6)


def test_unknown_option_is_an_error():
    with pytest.raises(ConfigError, match="lattent"):
        create("autoencoder", lattent=3)


def test_fit_transform_is_deterministic_and_survives_save_load(window, tmp_path):
    ids = np.array([4, 1, 5, 999, 1, 2, 3], dtype=np.int64)  # unknown and repeated ids too
    enc = create("autoencoder", **SMALL).fit(window, Run(seed=3, show_progress=False))
    out = enc.transform(window, ids)
    assert out.shape == (7, 3) and out.dtype == np.float32 and np.isfinite(out).all()
    np.testing.assert_array_equal(out[1], out[4])
    again = create("autoencoder", **SMALL).fit(window, Run(seed=3, show_progress=False)).transform(window, ids)
    np.testing.assert_array_equal(out, again)
    other = create("autoencoder", **SMALL).fit(window, Run(seed=4, show_progress=False)).transform(window, ids)
    assert not np.array_equal(out, other)
    enc.save(tmp_path / "ae")
    np.testing.assert_array_equal(AutoencoderEncoder.load(tmp_path / "ae").transform(window, ids), out)


def test_resume_gives_the_weights_of_an_uninterrupted_run(window, tmp_path, monkeypatch):
    full = create("autoencoder", **SMALL).fit(window, Run(seed=1, work_dir=tmp_path / "a", show_progress=False))
    run = Run(seed=1, work_dir=tmp_path / "b", show_progress=False)
    resumed, n_saves = fit_killed_then_resumed(
        lambda: create("autoencoder", **SMALL).fit(window, run), monkeypatch, kill_at=3
    )
    assert n_saves == 6  # killed mid-epoch 2 (2 steps per epoch): 3 before, only the 3 remaining after
    assert_same_weights(full.model_, resumed.model_)


def test_batches_never_leave_a_lone_row_and_device_choice_is_checked():
    assert ubp.training.batch_slices(5, 2) == [slice(0, 2), slice(2, 5)]
    assert ubp.training.batch_slices(3, 8) == [slice(0, 3)]
    if not torch.cuda.is_available():
        assert ubp.training.choose_device("auto").type == "cpu"
        with pytest.raises(UsageError, match="no CUDA"):
            ubp.training.choose_device("cuda")
