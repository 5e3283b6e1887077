"""Tasks of the user's own: task files, their errors, the log helper, and a mirror of a built-in task."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
from click.testing import CliRunner

from ubp.cli import main
from ubp.errors import InputError, UsageError
from ubp.evaluation.evaluate import evaluate
from ubp.evaluation.labels import build_labels
from ubp.evaluation.user_tasks import read_task_file, user_task_paths


def _write(path: Path, **columns) -> Path:
    pl.DataFrame(columns).write_parquet(path)
    return path


def test_binary_and_multi_label_files_become_tables(tmp_path):
    binary = read_task_file("b", _write(tmp_path / "b.parquet", client_id=[5, 7, 5, 7, 9],
                                        window=["train", "train", "validation", "validation", "validation"],
                                        label=[1, 0, 0, 1, 1]))
    labels = binary.align(np.array([9, 7, 5, 3]))
    assert labels.scored.tolist() == [False, True, True, False]  # scored: the clients with a train row
    assert labels.train[:, 0].tolist() == [False, False, True, False]
    assert labels.validation[:, 0].tolist() == [True, True, False, False]

    multi = read_task_file("m", _write(tmp_path / "m.parquet", client_id=[5, 5, 7, 7, None],
                                       window=["train"] * 3 + ["validation", None], target=[30, 10, 10, 30, 99]))
    labels = multi.align(np.array([7, 5, 3]))
    assert multi.n_labels == 3 and labels.scored.all()  # targets in order of appearance: 30, 10, 99 (declared)
    assert labels.train.tolist() == [[False, True, False], [True, True, False], [False, False, False]]
    assert labels.validation.tolist() == [[True, False, False], [False, False, False], [False, False, False]]
    assert multi.popularity.tolist() == [1.0, 2.0, 0.0]  # train rows per target


@pytest.mark.parametrize("columns, message", [
    ({"client_id": [1, 2], "window": ["train", "validation"]}, "needs exactly one of 'label'"),
    ({"client_id": [1, 1], "window": ["train", "later"], "label": [0, 1]}, "column 'window': must be one of"),
    ({"client_id": [1, 1], "window": ["train", "validation"], "label": [2, 1]}, "column 'label': must be 0 or 1"),
    ({"client_id": [1, 2], "window": ["train", "validation"], "label": [0, 1]}, "has no validation row"),
    ({"client_id": [1, 2], "window": ["train", "train"], "target": [4, 4]}, "only 1 distinct target"),
    ({"client_id": [1, None], "window": ["train", "train"], "label": [0, 1]}, "column 'client_id': has nulls"),
])
def test_bad_task_files_name_the_file_the_column_and_a_row(tmp_path, columns, message):
    path = _write(tmp_path / "bad.parquet", **columns)
    with pytest.raises(InputError, match=message) as info:
        read_task_file("bad", path)
    assert str(path) in str(info.value)
    if "column" in message and "nulls" not in message:
        assert "example row" in str(info.value)


def test_task_options_are_checked_before_any_work(tmp_path):
    path = _write(tmp_path / "t.parquet", client_id=[1, 1], window=["train", "validation"], label=[0, 1])
    assert user_task_paths((f"mine={path}",), ("churn",)) == {"mine": path}
    for option in ("mine", f"churn={path}", f"mine={tmp_path / 'absent.parquet'}"):
        with pytest.raises(UsageError):
            user_task_paths((option,), ("churn",))


def test_a_user_task_built_from_the_log_scores_like_the_built_in_task_it_mirrors(tiny_world, tmp_path):
    targets = np.load(tiny_world / "target" / "propensity_category.npy")
    task_file = tmp_path / "category.parquet"
    result = CliRunner().invoke(main, ["task-labels", "--data-dir", str(tiny_world), "--column", "category",
                                       "--values", ",".join(map(str, targets)), "--out", str(task_file)])
    assert result.exit_code == 0, result.output
    ids = np.load(tiny_world / "oracle" / "client_ids.npy")
    mine = read_task_file("mine", task_file).align(ids)
    builtin = build_labels(tiny_world, ids, ("propensity_category",))["propensity_category"]
    np.testing.assert_array_equal(mine.train, builtin.train)  # the same future windows, the same buys
    np.testing.assert_array_equal(mine.validation, builtin.validation)

    scores = evaluate(tiny_world, tiny_world / "oracle", tmp_path / "out", tasks=("propensity_category",),
                      mode="quick", device="cpu", orders=3, user_tasks={"mine": task_file}).scores["tasks"]
    ours, theirs = scores["mine"], scores["propensity_category"]
    assert [r["epochs"][i]["auroc"] for r in ours["runs"] for i in range(3)] == \
        [r["epochs"][i]["auroc"] for r in theirs["runs"] for i in range(3)]  # same labels: same networks
    assert abs(ours["score"] - theirs["score"]) <= max(3 * theirs["std"], 0.01)  # popularity may differ


def test_a_binary_user_task_is_scored_beside_the_built_in_ones(tiny_world, tmp_path):
    targets = np.load(tiny_world / "target" / "propensity_category.npy")
    task_file = tmp_path / "one_category.parquet"
    result = CliRunner().invoke(main, ["task-labels", "--data-dir", str(tiny_world), "--column", "category",
                                       "--values", str(targets[0]), "--binary", "--out", str(task_file)])
    assert result.exit_code == 0, result.output
    out = tmp_path / "eval"
    result = CliRunner().invoke(main, ["evaluate", "--data-dir", str(tiny_world), "--embeddings-dir",
                                       str(tiny_world / "oracle"), "--out", str(out), "--tasks", "churn",
                                       "--device", "cpu", "--task", f"buys_c0={task_file}"])
    assert result.exit_code == 0, result.output
    assert "buys_c0" in result.output and "churn" in result.output
    assert "buys_c0" in (out / "report.html").read_text()
