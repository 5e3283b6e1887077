"""The one standardizer: exact in-memory statistics, sound running moments, z-scores."""

from __future__ import annotations

import numpy as np
import pytest

from ubp import chunks
from ubp.standardize import RunningMoments, Standardizer


def test_running_moments_merge_chunks_like_the_whole_matrix() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(3.0, 2.0, size=(1000, 4))
    x[rng.random(x.shape) < 0.1] = np.nan  # missing values are left out
    moments = RunningMoments(4)
    bounds = [0, 1, 7, 300, 300, 301, 999, 1000]  # uneven chunks, single rows, an empty one
    for lo, hi in zip(bounds, bounds[1:]):
        moments.update(x[lo:hi])
    np.testing.assert_allclose(moments.mean, np.nanmean(x, axis=0), rtol=1e-12)
    np.testing.assert_allclose(moments.std, np.nanstd(x, axis=0), rtol=1e-12)


def test_running_moments_keep_the_digits_a_sum_of_squares_loses() -> None:
    """Values 1e8 + N(0, 1): Σx² − n·mean² cancels every digit of the variance; the merge does not."""
    rng = np.random.default_rng(1)
    x = 1e8 + rng.normal(size=(10_000, 1))
    moments = RunningMoments(1)
    for lo in range(0, len(x), 512):
        moments.update(x[lo : lo + 512])
    naive = np.sqrt(max(np.mean(x**2) - np.mean(x) ** 2, 0.0))
    assert moments.std[0] == pytest.approx(np.std(x), rel=1e-9)
    assert abs(naive - np.std(x)) > 0.01  # what the previous one-pass formula gave


def test_fit_in_chunks_is_bit_identical_to_numpy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(chunks, "ROWS", 7)
    x = np.random.default_rng(2).normal(size=(50, 3)).astype(np.float32)
    scaler = Standardizer.fit(x)
    x64 = x.astype(np.float64)
    assert np.array_equal(scaler.mean, x64.mean(axis=0)) and np.array_equal(scaler.std, x64.std(axis=0))


def test_transform_clips_imputes_and_round_trips() -> None:
    scaler = RunningMoments(2)
    scaler.update(np.array([[0.0, 5.0], [2.0, 5.0]]))  # the second column is constant: divided by 1
    s = scaler.standardizer(clip=0.5)
    assert s.mean.dtype == np.float32
    x = np.array([[4.0, 6.0], [np.nan, -np.inf]], dtype=np.float32)
    z = s.transform(x.copy())
    np.testing.assert_array_equal(z, [[0.5, 0.5], [0.0, -0.5]])
    assert s.transform(x, inplace=True) is x
    back = Standardizer.from_dict(s.to_dict())
    assert np.array_equal(back.mean, s.mean) and np.array_equal(back.std, s.std) and back.clip == s.clip
    assert Standardizer.from_dict(Standardizer(s.mean, s.std).to_dict()).clip is None


def test_matches_the_profile_normaliser_bit_for_bit(monkeypatch: pytest.MonkeyPatch) -> None:
    """A profile block's standardization is this standardizer with clip 5 and floor 1e-12."""
    from ubp.normaliser import fit_normaliser

    monkeypatch.setattr(chunks, "ROWS", 16)
    x = np.random.default_rng(3).normal(2.0, 3.0, size=(100, 5)).astype(np.float32)
    x[:, 2] = 1.5  # a constant column
    chunk = x[10:40].astype(np.float64)
    normaliser, _ = fit_normaliser(x, "standardize", 1.0, None, seed=0)
    assert np.array_equal(Standardizer.fit(x, clip=5.0, floor=1e-12).transform(chunk), normaliser.scale(chunk))


def test_centre_l2_takes_the_column_means_off_then_scales_rows_to_sqrt_width(tmp_path) -> None:
    """A block whose rows share a large common part: centre_l2 keeps what differs between them."""
    from ubp.normaliser import Normaliser, fit_normaliser

    rng = np.random.default_rng(0)
    x = (rng.normal(size=(50, 8)) * 0.1 + 5.0).astype(np.float32)
    normaliser, _ = fit_normaliser(x, "centre_l2", 1.0, None, seed=0)
    out = normaliser.apply(x.astype(np.float64))
    centred = x - x.astype(np.float64).mean(0)
    np.testing.assert_allclose(out, centred / np.linalg.norm(centred, axis=1, keepdims=True) * np.sqrt(8), rtol=1e-6)
    normaliser.save(tmp_path / "n.npz")
    np.testing.assert_array_equal(Normaliser.load(tmp_path / "n.npz").apply(x.astype(np.float64)), out)


def test_principal_rotates_the_standardized_columns_onto_every_principal_axis(tmp_path) -> None:
    """Without `pca` the rotation keeps every axis (as many as columns, even with fewer rows), in
    order of variance, uncorrelated; it only rotates, so distances between rows stay those of
    `standardize` up to one scale; and the saved normaliser maps rows the same."""
    from ubp.normaliser import Normaliser, fit_normaliser

    rng = np.random.default_rng(1)
    shared = rng.normal(size=(60, 2)) @ rng.normal(size=(2, 12))  # 12 columns, 2 directions + noise
    x = (shared + 0.05 * rng.normal(size=(60, 12)) + 3.0).astype(np.float32)
    rotated, info = fit_normaliser(x, "principal", 1.0, None, seed=0)
    standard, _ = fit_normaliser(x, "standardize", 1.0, None, seed=0)
    out, flat = rotated.apply(x.astype(np.float64)), standard.apply(x.astype(np.float64))
    assert out.shape == (60, 12) and info["out_dim"] == 12
    variances = out.var(axis=0)
    assert np.all(np.diff(variances) <= 1e-9) and variances[:2].sum() > 0.95 * variances.sum()
    np.testing.assert_allclose(np.cov(out, rowvar=False) * ~np.eye(12, dtype=bool), 0, atol=1e-9)
    scale = np.sqrt((out**2).sum(axis=1).mean() / ((flat - flat.mean(0)) ** 2).sum(axis=1).mean())
    np.testing.assert_allclose(np.linalg.norm(out[0] - out[1]), scale * np.linalg.norm(flat[0] - flat[1]), rtol=1e-9)
    few, _ = fit_normaliser(x[:5], "principal", 1.0, None, seed=0)
    assert few.apply(x[:5].astype(np.float64)).shape == (5, 12)
    rotated.save(tmp_path / "n.npz")
    np.testing.assert_array_equal(Normaliser.load(tmp_path / "n.npz").apply(x.astype(np.float64)), out)
