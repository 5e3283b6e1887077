"""The entry validator: one line per problem, naming the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ubp.errors import InputError
from ubp.evaluation.validate import load_valid_entry, validate_entry

IDS = np.array([30, -7, 12, 5], dtype=np.int64)


def _entry(tmp_path: Path, ids=IDS, emb=None, relevant=IDS) -> tuple[Path, Path]:
    data_dir, entry_dir = tmp_path / "data", tmp_path / "entry"
    (data_dir / "input").mkdir(parents=True)
    entry_dir.mkdir()
    np.save(data_dir / "input" / "relevant_clients.npy", np.asarray(relevant, dtype=np.int64))
    np.save(entry_dir / "client_ids.npy", ids)
    np.save(entry_dir / "embeddings.npy", np.ones((len(ids), 3), np.float16) if emb is None else emb)
    return data_dir, entry_dir


def test_valid_entry_has_no_problems(tmp_path):
    data_dir, entry_dir = _entry(tmp_path, ids=IDS[::-1].copy())
    assert validate_entry(data_dir, entry_dir) == []
    ids, emb = load_valid_entry(entry_dir)
    assert ids.tolist() == IDS[::-1].tolist() and emb.dtype == np.float16


@pytest.mark.parametrize(
    "ids, emb, expected",
    [
        (IDS.astype(np.int32), None, "dtype is int32, must be int64"),
        (IDS.reshape(2, 2), np.ones((2, 3), np.float16), "must be 1-D"),
        (IDS, np.ones((4, 3), np.float32), "dtype is float32, must be float16"),
        (IDS, np.ones((4, 2049), np.float16), "width 2049 exceeds 2048"),
        (IDS, np.ones(4, np.float16), "must be 2-D"),
        (IDS, np.array([[1, 2], [np.nan, 0], [0, 0], [0, 0]], np.float16), "NaN or Inf (first at row 1)"),
        (IDS, np.array([[1, 2], [0, 0], [0, np.inf], [0, 0]], np.float16), "NaN or Inf (first at row 2)"),
        (IDS, np.ones((3, 3), np.float16), "4 client ids but 3 embedding rows"),
        (np.array([1, 2, 2, 3]), None, "1 client ids appear more than once (example: 2)"),
    ],
)
def test_format_problems(tmp_path, ids, emb, expected):
    data_dir, entry_dir = _entry(tmp_path, ids=ids, emb=emb)
    problems = validate_entry(data_dir, entry_dir, relevant_check=False)
    assert len(problems) == 1 and expected in problems[0]
    with pytest.raises(InputError, match="not a valid entry"):
        load_valid_entry(entry_dir)


def test_missing_and_unreadable_files(tmp_path):
    data_dir, entry_dir = _entry(tmp_path)
    (entry_dir / "embeddings.npy").unlink()
    (entry_dir / "client_ids.npy").write_bytes(b"not a numpy file")
    problems = validate_entry(data_dir, entry_dir)
    assert len(problems) == 2
    assert "client_ids.npy: cannot be read" in problems[0]
    assert "embeddings.npy: missing" in problems[1]
    assert all("\n" not in p for p in problems)


def test_relevant_clients_permutation_check(tmp_path):
    data_dir, entry_dir = _entry(tmp_path, relevant=[30, -7, 12, 99])
    problems = validate_entry(data_dir, entry_dir)
    assert len(problems) == 1
    assert "1 relevant clients missing (example: 99)" in problems[0]
    assert "1 ids not in relevant_clients.npy (example: 5)" in problems[0]
    assert validate_entry(data_dir, entry_dir, relevant_check=False) == []


def test_cli_validate(tmp_path):
    from click.testing import CliRunner

    from ubp.cli import main

    data_dir, entry_dir = _entry(tmp_path, relevant=[30, -7, 12])
    args = ["validate", "--data-dir", str(data_dir), "--embeddings-dir", str(entry_dir)]
    bad = CliRunner().invoke(main, args)
    assert bad.exit_code == 1 and "not a permutation" in bad.output
    good = CliRunner().invoke(main, [*args, "--no-relevant-check"])
    assert good.exit_code == 0 and "valid entry" in good.output
