"""Recipes: TOML into frozen dataclasses, unknown keys and bad values are errors."""

from __future__ import annotations

import resource
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from ubp.cli import main
from ubp.config import ConfigError, parse_assignments
from ubp.errors import InputError
from ubp.recipe import BlockSpec, load_recipe, shipped_recipes


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "recipe.toml"
    path.write_text(text)
    return path


def test_default_recipe_loads_and_is_frozen() -> None:
    recipe = load_recipe()
    assert recipe.blocks and all(isinstance(b, BlockSpec) for b in recipe.blocks)
    with pytest.raises(Exception):
        recipe.seed = 3  # type: ignore[misc]


def test_shipped_recipes_load_by_name_and_a_missing_file_names_them(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # a name is a shipped recipe only where no file of that name exists
    assert {"default", "best"} <= set(shipped_recipes())
    for name in shipped_recipes():
        assert load_recipe(name).blocks
    assert load_recipe("default") == load_recipe()
    with pytest.raises(ConfigError, match=f"not found.*{', '.join(shipped_recipes())}"):
        load_recipe("no_such_recipe")
    (tmp_path / "default").write_text('[[blocks]]\nname = "random"\n')  # a file of that name wins
    assert [b.name for b in load_recipe("default").blocks] == ["random"]


def test_unknown_top_level_key_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, 'seeed = 1\n[[blocks]]\nname = "random"\n')
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['seeed'\]"):
        load_recipe(path)


def test_unknown_block_key_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, '[[blocks]]\nname = "random"\nwieght = 2.0\n')
    with pytest.raises(ConfigError, match="blocks\\[0\\].*wieght"):
        load_recipe(path)


def test_unknown_block_name_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, '[[blocks]]\nname = "no_such_block"\n')
    with pytest.raises(ConfigError, match="unknown block 'no_such_block'"):
        load_recipe(path)


def test_wrong_type_and_bad_values_are_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="expected int"):
        load_recipe(write(tmp_path, 'seed = "one"\n[[blocks]]\nname = "random"\n'))
    with pytest.raises(ConfigError, match="normalise must be one of"):
        load_recipe(write(tmp_path, '[[blocks]]\nname = "random"\nnormalise = "zscore"\n'))


def test_fit_key_ignores_weight_but_not_options() -> None:
    a = BlockSpec("random", weight=1.0, options={"dim": 8})
    assert a.fit_key(0) == BlockSpec("random", weight=0.5, options={"dim": 8}).fit_key(0)
    assert a.fit_key(0) != BlockSpec("random", options={"dim": 9}).fit_key(0)
    assert a.fit_key(0) != a.fit_key(1)


def test_command_line_overrides_are_read_as_toml_literals() -> None:
    assert parse_assignments(["epochs=0.5", "layers=2", "bf16=true", "preset=cpu", 'name="a b"']) == {
        "epochs": 0.5, "layers": 2, "bf16": True, "preset": "cpu", "name": "a b"}
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_assignments(["epochs"])


def run_cli(*args: str) -> tuple[subprocess.CompletedProcess, float]:
    """`ubp ARGS` in a fresh process, and the CPU seconds it used (imports included; CPU time,
    not wall time, so that other jobs on a shared machine do not count)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run([sys.executable, "-m", "ubp.cli", *args], capture_output=True, text=True, timeout=60)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return done, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


@pytest.mark.parametrize("options, message", [
    ("{ top_N = 50 }", "block 'counts' options: unknown key(s) ['top_N'] (did you mean 'top_n'?); allowed: clip, top_n, windows"),
    ('{ top_n = "fifty" }', "block 'counts' options.top_n: expected int, got 'fifty'"),
    ("{ windows = 7 }", "block 'counts' options.windows: expected a list, got 7"),
])
def test_a_bad_block_option_fails_in_one_line_before_any_work(tmp_path: Path, options: str, message: str) -> None:
    recipe = write(tmp_path, f'[[blocks]]\nname = "features"\n\n[[blocks]]\nname = "counts"\noptions = {options}\n')
    out = tmp_path / "run"
    done, seconds = run_cli("run", "--config", str(recipe), "--out", str(out), "--scale", "tiny")
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.strip() == f"Error: {recipe}: {message}"  # one line, no traceback
    assert not out.exists()  # nothing written: no world, no split
    assert seconds < 1.0, f"{seconds:.2f} s of CPU"


def test_options_of_a_block_inside_a_block_are_checked(tmp_path: Path) -> None:
    path = write(tmp_path, '[[blocks]]\nname = "autoencoder"\noptions = { input_options = { clipp = 3.0 } }\n')
    with pytest.raises(ConfigError, match=r"autoencoder.input_options: unknown key\(s\) \['clipp'\] \(did you mean 'clip'\?\)"):
        load_recipe(path)
    path = write(tmp_path, '[[blocks]]\nname = "sequence"\noptions = { preset = "tiny", widht = 8 }\n')
    with pytest.raises(ConfigError, match=r"block 'sequence' options: unknown key\(s\) \['widht'\] \(did you mean 'width'\?\)"):
        load_recipe(path)


def test_blocks_lists_every_block_with_its_options() -> None:
    from ubp.encoders import REGISTRY

    result = CliRunner().invoke(main, ["blocks"])
    assert result.exit_code == 0
    for name in REGISTRY.names():
        assert f"\n{name}: " in "\n" + result.output
    assert "    top_n (int, default 100): most bought categories and SKUs counted" in result.output
    assert "    preset (str, default 'cpu'): size preset" in result.output


def test_only_ubp_errors_become_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import ubp.data.prepare

    def bug(*args, **kwargs):
        raise KeyError("block_fit_seconds")

    monkeypatch.setattr(ubp.data.prepare, "prepare", bug)
    result = CliRunner().invoke(main, ["prepare", "--data-dir", str(tmp_path)])
    assert isinstance(result.exception, KeyError)  # a bug keeps its traceback
    monkeypatch.setattr(ubp.data.prepare, "prepare", lambda *a, **k: (_ for _ in ()).throw(InputError("x.parquet: bad")))
    result = CliRunner().invoke(main, ["prepare", "--data-dir", str(tmp_path)])
    assert result.exit_code == 1 and result.output == "Error: x.parquet: bad\n"


def test_an_unknown_reference_fails_in_one_line_before_any_work(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["run", "--out", str(tmp_path / "run"), "--references", "counts,bogus"])
    assert result.exit_code == 1
    assert "unknown reference 'bogus'" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "run").exists()
