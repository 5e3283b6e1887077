"""Labels against a slow reference, and `ubp evaluate` end to end, on a hand-made split layout."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from ubp.errors import InputError
from ubp.evaluation.evaluate import evaluate, scoring_runs
from ubp.evaluation.labels import build_labels
from ubp.hashing import hash_order
from ubp.layout import TASKS

N_SKUS = 40


def make_split(root: Path, n_clients: int, seed: int = 0) -> tuple[Path, np.ndarray, np.ndarray]:
    """A split data dir (targets only) whose buys depend on a latent per client; returns (dir, ids, latent)."""
    rng = np.random.default_rng(seed)
    ids = rng.permutation(np.unique(rng.integers(-(10**12), 10**12, size=2 * n_clients)))[:n_clients]
    latent = rng.normal(size=(n_clients, 4)).astype(np.float32)
    skus = rng.choice(np.arange(10**6, 10**7), size=N_SKUS, replace=False)
    categories = np.array([11, 22, 33, 44, 55, 66, 77])[rng.integers(0, 7, N_SKUS)]
    prices = rng.integers(0, 100, N_SKUS)
    affinity = latent @ rng.normal(size=(4, N_SKUS))
    (root / "target").mkdir(parents=True)
    (root / "input").mkdir()
    for window, day in (("train", 1), ("validation", 15)):
        n_buys = rng.poisson(np.exp(latent[:, 0] - 0.5))
        rows = np.repeat(np.arange(n_clients), n_buys)
        logits = affinity[rows] + rng.gumbel(size=(len(rows), N_SKUS))
        item = logits.argmax(axis=1)
        pl.DataFrame({
            "client_id": ids[rows],
            "timestamp": [datetime(2022, 6, day)] * len(rows),
            "sku": skus[item], "category": categories[item], "price": prices[item],
        }).write_parquet(root / "target" / f"{window}_target.parquet")
    targets = {
        "category": np.array([22, 11, 77, 99]),  # 99: nobody buys it
        "sku": skus[:12],
        "new_sku": np.array([skus[20], skus[31], 5]),  # 5: not a product
        "price": np.unique(prices)[:8],
    }
    for column, target in targets.items():
        np.save(root / "target" / f"propensity_{column}.npy", target.astype(np.int64))
        np.save(root / "target" / f"popularity_propensity_{column}.npy", rng.integers(1, 50, len(target)))
    active = np.concatenate([ids[rng.random(n_clients) < 0.6], [123456789]])
    np.save(root / "target" / "active_clients.npy", active)
    np.save(root / "input" / "relevant_clients.npy", ids)
    return root, ids, latent


def write_entry_files(entry_dir: Path, ids: np.ndarray, emb: np.ndarray) -> Path:
    entry_dir.mkdir(parents=True, exist_ok=True)
    np.save(entry_dir / "client_ids.npy", ids.astype(np.int64))
    np.save(entry_dir / "embeddings.npy", emb.astype(np.float16))
    return entry_dir


def reference_labels(data_dir: Path, client_ids: np.ndarray, task: str, window: str):
    """Obviously correct and slow: one scan of the window per client, as the organisers do."""
    rows = pl.read_parquet(data_dir / "target" / f"{window}_target.parquet").to_dicts()
    if task in ("churn", "conversion"):
        ids = client_ids
        if task == "churn":
            active = set(np.load(data_dir / "target" / "active_clients.npy").tolist())
            ids = [c for c in client_ids if c in active]
        return np.array([[not any(r["client_id"] == c for r in rows)] for c in ids])
    column = task.rsplit("_", 1)[-1]
    targets = np.load(data_dir / "target" / f"{task}.npy").tolist()
    out = []
    for c in client_ids:
        bought = {r[column] for r in rows if r["client_id"] == c}
        out.append([t in bought for t in targets])
    return np.array(out)


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> tuple[Path, np.ndarray, np.ndarray]:
    return make_split(tmp_path_factory.mktemp("split") / "world", n_clients=100)


def test_labels_match_slow_reference(world):
    data_dir, ids, _ = world
    entry_order = ids[np.random.default_rng(3).permutation(len(ids))][:80]  # a subset, shuffled
    labels = build_labels(data_dir, entry_order, TASKS)
    for task in TASKS:
        lab = labels[task]
        for window, matrix in (("train", lab.train), ("validation", lab.validation)):
            expected = reference_labels(data_dir, entry_order, task, window)
            np.testing.assert_array_equal(matrix[lab.scored], expected, err_msg=f"{task} {window}")
    assert labels["conversion"].scored.all()
    assert 0 < labels["churn"].scored.sum() < len(entry_order)
    assert not labels["propensity_category"].validation[:, 3].any()  # target 99 is never bought


def test_labels_errors_name_the_file(world, tmp_path):
    data_dir, ids, _ = world
    with pytest.raises(InputError, match="train_target.parquet: missing"):
        build_labels(tmp_path, ids, ("churn",))
    bad = tmp_path / "bad"
    make_split(bad, 10)
    np.save(bad / "target" / "propensity_sku.npy", np.array([3, 3, 4]))
    with pytest.raises(InputError, match="propensity_sku.npy: target ids must be unique"):
        build_labels(bad, ids, ("propensity_sku",))


def test_scoring_runs():
    ids = np.array([50, 7, -3, 12])
    single = scoring_runs(ids, 1, 1278)
    assert single[0].perm.tolist() == [0, 1, 2, 3] and single[0].seed == 1278  # the organisers' run
    runs = scoring_runs(ids, 3, 1278)
    assert [r.name for r in runs] == ["hash-salt-0", "hash-salt-1", "hash-salt-2"]
    assert [r.seed for r in runs] == [1278, 1279, 1280]
    assert runs[1].perm.tolist() == hash_order(ids, salt=1).tolist()
    # the same clients in another file order meet the same orders
    shuffled = ids[[2, 0, 3, 1]]
    assert ids[runs[2].perm].tolist() == shuffled[scoring_runs(shuffled, 3, 1278)[2].perm].tolist()


def test_quick_evaluate_end_to_end(world, tmp_path):
    data_dir, ids, latent = world
    entry = write_entry_files(tmp_path / "oracle", ids, latent)
    result = evaluate(data_dir, entry, tmp_path / "out", tasks=TASKS, mode="quick", device="cpu")
    scores = json.loads((tmp_path / "out" / "scores.json").read_text())
    assert scores == json.loads(json.dumps(result.scores))
    assert set(scores["tasks"]) == set(TASKS)
    for task, rec in scores["tasks"].items():
        assert 0 <= rec["score"] <= 1 and len(rec["runs"][0]["epochs"]) == 3
        assert rec["score"] == max(e["score"] for e in rec["runs"][0]["epochs"]).__round__(4)
    assert scores["tasks"]["conversion"]["n_clients"] == 100
    assert scores["tasks"]["churn"]["n_clients"] < 100
    assert scores["tasks"]["propensity_category"]["labels_with_validation_positive"] == 3
    assert scores["missing_relevant_clients"] == 0 and scores["mode"] == "quick"
    html = (tmp_path / "out" / "report.html").read_text()
    assert "<svg" in html and "propensity_price" in html
    assert "quick evaluation" in result.describe()
    again = evaluate(data_dir, entry, tmp_path / "out2", tasks=("churn", "propensity_sku"), mode="quick", device="cpu")
    for task in ("churn", "propensity_sku"):
        assert again.scores["tasks"][task]["runs"] == scores["tasks"][task]["runs"]  # deterministic


def test_full_evaluate_and_orders(world, tmp_path):
    data_dir, ids, latent = world
    entry = write_entry_files(tmp_path / "e", ids, latent)
    full = evaluate(data_dir, entry, tmp_path / "full", tasks=("propensity_category",), mode="full", device="cpu")
    assert full.scores["mode"] == "full"
    assert 0 < full.scores["tasks"]["propensity_category"]["score"] <= 1
    multi = evaluate(data_dir, entry, tmp_path / "multi", tasks=("conversion",), mode="quick", device="cpu",
                     orders=3)
    rec = multi.scores["tasks"]["conversion"]
    assert [r["order"] for r in rec["runs"]] == ["hash-salt-0", "hash-salt-1", "hash-salt-2"]
    assert [r["seed"] for r in rec["runs"]] == [1278, 1279, 1280]
    run_scores = [r["score"] for r in rec["runs"]]
    assert rec["min"] == min(run_scores) and rec["max"] == max(run_scores)
    assert rec["score"] == pytest.approx(np.mean(run_scores), abs=1e-4)


def test_missing_relevant_clients_warn_or_fail(world, tmp_path, caplog):
    data_dir, ids, latent = world
    entry = write_entry_files(tmp_path / "part", ids[:90], latent[:90])
    result = evaluate(data_dir, entry, tmp_path / "o", tasks=("conversion",), mode="quick", device="cpu")
    assert result.scores["missing_relevant_clients"] == 10
    assert "10 relevant clients have no row" in caplog.text
    with pytest.raises(InputError, match="10 relevant clients have no row"):
        evaluate(data_dir, entry, tmp_path / "o2", tasks=("conversion",), mode="quick", device="cpu", strict=True)


def test_cli_evaluate(world, tmp_path):
    from click.testing import CliRunner

    from ubp.cli import main

    data_dir, ids, latent = world
    entry = write_entry_files(tmp_path / "cli", ids, latent)
    res = CliRunner().invoke(main, ["evaluate", "--data-dir", str(data_dir), "--embeddings-dir", str(entry),
                                    "--out", str(tmp_path / "cli_out"), "--tasks", "churn", "--device", "cpu"])
    assert res.exit_code == 0, res.output
    assert "churn" in res.output and (tmp_path / "cli_out" / "report.html").is_file()
    bad = CliRunner().invoke(main, ["evaluate", "--data-dir", str(data_dir), "--embeddings-dir",
                                    str(tmp_path / "nowhere"), "--out", str(tmp_path / "x")])
    assert bad.exit_code == 1 and "client_ids.npy: missing" in bad.output
