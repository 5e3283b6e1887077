"""One evaluation session: content-keyed label cache, and networks trained in a pool or in batches
with exactly the results of training each alone."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from ubp.evaluation import label_cache
from ubp.evaluation.evaluate import evaluate_many, scoring_runs
from ubp.evaluation.labels import build_labels, build_task_tables
from ubp.evaluation.trainer import QUICK, train_and_score
from ubp.layout import TASKS

from test_evaluation import make_split, write_entry_files


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> tuple[Path, np.ndarray, np.ndarray]:
    return make_split(tmp_path_factory.mktemp("session") / "world", n_clients=120, seed=4)


def _same_tables(a, b) -> None:
    assert a.keys() == b.keys()
    for task in a:
        x, y = a[task], b[task]
        assert (x.task, x.n_labels, x.no_buy) == (y.task, y.n_labels, y.no_buy)
        for window in x.positives:
            for u, v in zip(x.positives[window], y.positives[window]):
                np.testing.assert_array_equal(u, v)
        for u, v in ((x.scored_ids, y.scored_ids), (x.popularity, y.popularity)):
            assert (u is None) == (v is None)
            if u is not None:
                np.testing.assert_array_equal(u, v)


def test_label_cache_is_keyed_by_content_not_path(world, tmp_path, monkeypatch):
    data_dir, _, _ = world
    cache = tmp_path / "cache"
    built = label_cache.cached_task_tables(data_dir, TASKS, cache)
    assert len(list(cache.glob("*.npz"))) == len(TASKS)
    _same_tables(built, build_task_tables(data_dir, TASKS))

    moved = tmp_path / "moved"
    shutil.copytree(data_dir, moved)
    monkeypatch.setattr(label_cache, "build_task_tables", lambda *a: pytest.fail("labels rebuilt on a cache hit"))
    _same_tables(label_cache.cached_task_tables(moved, TASKS, cache), built)  # same bytes elsewhere: a hit
    monkeypatch.undo()

    for name in ("propensity_sku.npy", "popularity_propensity_sku.npy"):
        np.save(moved / "target" / name, np.load(moved / "target" / name)[:5])
    changed = label_cache.cached_task_tables(moved, ("propensity_sku", "churn"), cache)
    assert changed["propensity_sku"].n_labels == 5  # a changed target file misses the cache
    assert len(list(cache.glob("propensity_sku-*.npz"))) == 2 and len(list(cache.glob("churn-*.npz"))) == 1


def test_aligned_tables_equal_labels_built_for_the_entry(world):
    data_dir, ids, _ = world
    entry_order = ids[np.random.default_rng(5).permutation(len(ids))][:90]
    tables = build_task_tables(data_dir, TASKS)
    direct = build_labels(data_dir, entry_order, TASKS)
    for task in TASKS:
        aligned = tables[task].align(entry_order)
        for part in ("scored", "train", "validation"):
            np.testing.assert_array_equal(getattr(aligned, part), getattr(direct[task], part))


def _alone(data_dir: Path, ids: np.ndarray, emb: np.ndarray, task: str, orders: int) -> list:
    """Each run trained by itself, as the evaluator trained them one after another."""
    labels = build_labels(data_dir, ids, (task,))[task]
    x_all = torch.from_numpy(emb.astype(np.float16))
    runs = []
    for p in scoring_runs(ids, orders, QUICK.seed):
        rows = p.perm[labels.scored[p.perm]]
        rows_t = torch.from_numpy(rows)
        runs.append(train_and_score(x_all[rows_t], torch.from_numpy(labels.train[rows]),
                                    torch.from_numpy(labels.validation[rows]), labels.popularity, QUICK, seed=p.seed))
    return [[(e.auroc, e.novelty, e.diversity) for e in r.epochs] for r in runs]


def test_a_pool_of_workers_scores_exactly_like_training_each_network_alone(world, tmp_path):
    data_dir, ids, latent = world
    rng = np.random.default_rng(0)
    entries = {"oracle": write_entry_files(tmp_path / "oracle", ids, latent),
               "noisy": write_entry_files(tmp_path / "noisy", ids[::-1], latent[::-1] + rng.normal(size=latent.shape))}
    tasks = ("churn", "propensity_category")
    results = {}
    for workers in (1, 2):
        outs = {name: tmp_path / f"out{workers}" / name for name in entries}
        scored, times = evaluate_many(data_dir, entries, outs, tasks=tasks, mode="quick", device="cpu", orders=2,
                                      workers=workers, label_cache=tmp_path / "labels")
        assert times.workers == workers and times.jobs == len(entries) * len(tasks) * 2
        results[workers] = {name: {task: {k: v for k, v in rec.items() if k != "wall_s"}
                                       for task, rec in r.scores["tasks"].items()} for name, r in scored.items()}
    assert results[1] == results[2]
    for name, entry in entries.items():
        entry_ids, emb = np.load(entry / "client_ids.npy"), np.load(entry / "embeddings.npy")
        for task in tasks:
            got = [[(e["auroc"], e["novelty"], e["diversity"]) for e in run["epochs"]]
                   for run in results[2][name][task]["runs"]]
            assert got == _alone(data_dir, entry_ids, emb, task, orders=2), (name, task)
