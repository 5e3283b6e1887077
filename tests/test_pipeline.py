"""`ubp run` end to end on the tiny world, stage caching, and the blend."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from ubp.cli import main
from ubp.entry import read_entry
from ubp.profile import BlockMatrix, blend, block_key, normalise
from ubp.recipe import BlockSpec, Recipe

RECIPE = """
seed = 0
[[blocks]]
name = "counts"
[[blocks]]
name = "autoencoder"
normalise = "l2"
weight = 0.5
options = {{ input_block = "counts", epochs = {epochs}, hidden = [32], latent = 8 }}
"""


def test_run_end_to_end_then_refit_only_the_changed_block(tiny_world: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    runner = CliRunner()
    mine = tmp_path / "mine.parquet"
    result = runner.invoke(main, ["task-labels", "--data-dir", str(tiny_world), "--column", "price", "--values",
                                  "10,50,90", "--out", str(mine)])
    assert result.exit_code == 0, result.output
    for epochs in (1, 2):
        recipe = tmp_path / f"recipe{epochs}.toml"
        recipe.write_text(RECIPE.format(epochs=epochs))
        result = runner.invoke(main, ["run", "--data-dir", str(tiny_world), "--config", str(recipe),
                                      "--out", str(out), "--orders", "1", "--task", f"mine={mine}"])
        assert result.exit_code == 0, result.output
    assert "The profile beats counts on " in result.output and "oracle (ceiling)" in result.output
    profile = json.loads((out / "entry" / "profile.json").read_text())
    assert profile["cached_blocks"] == ["counts"]  # only the autoencoder's options changed
    assert [b["name"] for b in profile["blocks"]] == ["counts", "autoencoder"]
    model = json.loads((out / "model" / "model.json").read_text())  # the fitted profile, ready for `ubp embed --model`
    assert [b["columns"] for b in model["blocks"]] == [b["columns"] for b in profile["blocks"]]
    ids, emb = read_entry(out / "entry")
    assert emb.dtype == np.float16 and emb.shape == (len(ids), profile["width"])
    assert sorted(ids.tolist()) == sorted(np.load(tiny_world / "input" / "relevant_clients.npy").tolist())
    report = (out / "report.html").read_text()
    for needle in ("The profile beats counts on ", "Δ against <b>counts</b>", "(ceiling)", "what its score is",
                   "Scores", "baseline", "gap closed", "Stages", "peak RSS", "data:image/png;base64"):
        assert needle in report
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["scores"]) == {"profile", "random", "baseline", "counts", "oracle"}
    assert "mine" in json.loads((out / "eval" / "profile" / "scores.json").read_text())["tasks"]  # a user task


def _block(name: str, matrix: np.ndarray, **kw) -> BlockMatrix:
    return BlockMatrix(BlockSpec(name, **kw), matrix.astype(np.float32), cached=False, seconds=0.0)


def test_one_configuration_spelt_two_ways_shares_one_fit_key() -> None:
    def key(name: str, **options) -> dict:
        return block_key(BlockSpec(name, options=options), 0, None, "window")

    assert key("sequence", epochs=1) == key("sequence", preset="cpu", epochs=1.0, width=128)  # the cpu preset's width
    assert key("sequence", epochs=1) != key("sequence", epochs=2)
    assert key("features") == key("features", **{}) != key("counts")


def test_blend_normalises_weights_and_drops_zero_weight_blocks() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(5.0, 3.0, size=(200, 4))
    b = rng.normal(0.0, 1.0, size=(200, 6))
    recipe = Recipe(blocks=(BlockSpec("random", normalise="standardize"), BlockSpec("counts", normalise="l2", weight=2.0)))
    matrix, manifest, _ = blend([_block("random", a, normalise="standardize"), _block("counts", b, normalise="l2", weight=2.0)], recipe)
    assert matrix.shape == (200, 10)
    np.testing.assert_allclose(matrix[:, :4].mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(matrix[:, :4].std(axis=0), 1.0, atol=1e-4)
    np.testing.assert_allclose(np.linalg.norm(matrix[:, 4:], axis=1), 2.0 * np.sqrt(6), rtol=1e-5)
    assert [m["columns"] for m in manifest] == [[0, 4], [4, 10]]

    dropped, manifest, _ = blend([_block("random", a), _block("counts", b, weight=0.0)], recipe)
    assert dropped.shape == (200, 4) and [m["name"] for m in manifest] == ["random"]
    assert manifest[0]["normalise"] == "none"  # `auto`: random noise is already unit scale
    np.testing.assert_array_equal(dropped, a.astype(np.float32))


def test_blend_caps_the_width_with_pca() -> None:
    rng = np.random.default_rng(1)
    blocks = [_block("random", rng.normal(size=(300, 40))), _block("counts", rng.normal(size=(300, 20)))]
    recipe = Recipe(blocks=(BlockSpec("random"), BlockSpec("counts")), max_width=30)
    matrix, manifest, _ = blend(blocks, recipe)
    assert matrix.shape[1] <= 30
    assert all(m["out_dim"] < m["in_dim"] for m in manifest)


def test_pca_fits_on_a_row_sample_and_projects_every_row(monkeypatch) -> None:
    import ubp.normaliser

    rng = np.random.default_rng(2)
    low_rank = rng.normal(size=(500, 3)) @ rng.normal(size=(3, 12))  # 3 directions hold everything
    spec = BlockSpec("counts", pca=3, normalise="none")
    whole, info, _ = normalise(low_rank, spec, seed=0)
    monkeypatch.setattr(ubp.normaliser, "PCA_FIT_ROWS", 50)
    sampled, sampled_info, _ = normalise(low_rank, spec, seed=0)
    assert info["pca_fit_rows"] == 500 and sampled_info["pca_fit_rows"] == 50
    assert sampled.shape == whole.shape == (500, 3)
    assert sampled_info["pca_explained_variance"] > 0.999
    # the same subspace: the sampled projection is a rotation of the full one (up to its centre)
    q_whole, q_sampled = (np.linalg.qr(x - x.mean(axis=0))[0] for x in (whole, sampled))
    np.testing.assert_allclose(np.linalg.svd(q_whole.T @ q_sampled)[1], 1.0, atol=1e-4)


def test_run_reports_a_bad_config_in_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[[blocks]]\nname = "counts"\ncolour = "red"\n')
    result = CliRunner().invoke(main, ["run", "--config", str(bad), "--out", str(tmp_path / "r")])
    assert result.exit_code == 1
    assert "unknown key(s) ['colour']" in result.output and "Traceback" not in result.output


def test_ablation_variants_leave_out_blocks_and_objectives() -> None:
    from ubp.ablation import variants

    recipe = Recipe(blocks=(BlockSpec("counts"), BlockSpec("sequence", options={"preset": "tiny"})))
    names = list(variants(recipe))
    assert names[:3] == ["all", "without counts", "without sequence"]
    assert "sequence without NIP" in names
    nip_off = variants(recipe)["sequence without NIP"].blocks[1]
    assert nip_off.options == {"preset": "tiny", "nip_weight": 0.0}


def test_ablation_leaves_out_each_head_of_dcn() -> None:
    from ubp.ablation import variants

    heads = variants(Recipe(blocks=(BlockSpec("dcn", options={"inner_tasks": ["churn", "price"]}),)))
    assert list(heads) == ["all", "dcn without CHURN", "dcn without PRICE"]
    assert heads["dcn without CHURN"].blocks[0].options == {"inner_tasks": ["price"]}
    assert list(variants(Recipe(blocks=(BlockSpec("dcn", options={"inner_tasks": ["churn"]}),)))) == ["all"]


def test_ablate_command_writes_a_table(tiny_world: Path, tmp_path: Path) -> None:
    recipe = tmp_path / "recipe.toml"
    recipe.write_text('[[blocks]]\nname = "counts"\n[[blocks]]\nname = "random"\noptions = { dim = 8 }\n')
    result = CliRunner().invoke(main, ["ablate", "--data-dir", str(tiny_world), "--config", str(recipe),
                                       "--out", str(tmp_path / "abl"), "--orders", "1"])
    assert result.exit_code == 0, result.output
    table = json.loads((tmp_path / "abl" / "ablation.json").read_text())
    assert set(table) == {"all", "without counts", "without random"}
    assert "data:image/png;base64" in (tmp_path / "abl" / "ablation.html").read_text()


def test_blend_in_row_chunks_matches_whole_matrix_float64(monkeypatch) -> None:
    """Chunked normalisation (statistics summed row by row in float64) gives the whole-matrix
    float64 result bit for bit; a lone block is normalised in its own matrix."""
    from ubp import chunks

    monkeypatch.setattr(chunks, "ROWS", 7)
    x = np.random.default_rng(2).lognormal(0.0, 2.0, size=(50, 5)).astype(np.float32)
    x64 = x.astype(np.float64)
    std = x64.std(axis=0)
    want = (np.clip((x64 - x64.mean(axis=0)) / std, -5.0, 5.0) * 0.3).astype(np.float32)
    block = _block("counts", x, normalise="standardize", weight=0.3)
    matrix, _, _ = blend([block], Recipe(blocks=(BlockSpec("counts", normalise="standardize", weight=0.3),)))
    np.testing.assert_array_equal(matrix, want)
    assert matrix is block.matrix


def test_networks_train_side_by_side_only_where_threads_and_work_allow(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from ubp.evaluation.session import POOL_MIN_ROWS, pool_size
    from ubp.evaluation.trainer import FULL, QUICK

    monkeypatch.setattr("ubp.evaluation.session.available_cores", lambda: 4)
    cpu, big = torch.device("cpu"), POOL_MIN_ROWS
    assert pool_size(QUICK, cpu, n_jobs=120, training_rows=big) == 4
    assert pool_size(QUICK, cpu, n_jobs=2, training_rows=big) == 2
    assert pool_size(QUICK, cpu, n_jobs=120, training_rows=big - 1) == 1  # too little work for a pool
    assert pool_size(FULL, cpu, n_jobs=120, training_rows=big) == 1  # all threads in one process
    assert pool_size(QUICK, torch.device("cuda"), n_jobs=120, training_rows=big) == 1
