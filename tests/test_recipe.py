"""Recipes: TOML into frozen dataclasses, unknown keys and bad values are errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from ubp.config import ConfigError, parse_assignments
from ubp.recipe import BlockSpec, load_recipe


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "recipe.toml"
    path.write_text(text)
    return path


def test_default_recipe_loads_and_is_frozen() -> None:
    recipe = load_recipe()
    assert recipe.blocks and all(isinstance(b, BlockSpec) for b in recipe.blocks)
    with pytest.raises(Exception):
        recipe.seed = 3  # type: ignore[misc]


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
