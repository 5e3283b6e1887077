"""Profile recipes: which blocks, with which options, normalisation and weight (TOML)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

from ubp.config import ConfigError, from_dict, load_toml

NORMALISATIONS = ("auto", "standardize", "principal", "l2", "centre_l2", "none")


@dataclass(frozen=True)
class BlockSpec:
    """One block of a profile. `options` are the block's options table, checked against its
    options dataclass (`ubp blocks` lists them) when the spec is made."""

    name: str
    weight: float = 1.0
    normalise: str = "auto"  # auto (the block's own preference) | standardize columns | principal (standardize, then the principal axes) | l2 rows | centre_l2 | none
    pca: int | None = None  # compress to this many columns (fitted on the profile's clients)
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.normalise not in NORMALISATIONS:
            raise ConfigError(f"block {self.name!r}: normalise must be one of {NORMALISATIONS}, got {self.normalise!r}")
        if self.weight < 0:
            raise ConfigError(f"block {self.name!r}: weight must be ≥ 0, got {self.weight}")
        if self.pca is not None and self.pca < 1:
            raise ConfigError(f"block {self.name!r}: pca must be ≥ 1, got {self.pca}")
        from ubp.encoders.registry import block_options

        block_options(self.name, self.options, f"block {self.name!r} options")

    @property
    def resolved_normalise(self) -> str:
        """`auto` resolves to the encoder's `preferred_normalise` (blocks that standardize
        themselves say "none": standardizing twice blows rare, clipped columns up again)."""
        if self.normalise != "auto":
            return self.normalise
        from ubp.encoders import REGISTRY

        return REGISTRY[self.name].preferred_normalise

    def fit_key(self, seed: int) -> str:
        """What a fitted block depends on: its name, options and the seed (not weight/normalisation)."""
        payload = json.dumps({"name": self.name, "options": self.options, "seed": seed}, sort_keys=True, default=str)
        return hashlib.sha1(payload.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class Recipe:
    blocks: tuple[BlockSpec, ...]
    seed: int = 0
    max_width: int = 2048

    def __post_init__(self) -> None:
        if not self.blocks:
            raise ConfigError("a recipe needs at least one [[blocks]] entry")
        if all(b.weight == 0 for b in self.blocks):
            raise ConfigError("every block has weight 0: the profile would have no column")
        names = [b.name for b in self.blocks]
        if len(set(names)) != len(names):
            raise ConfigError(f"block names must be unique in a recipe, got {names}")
        from ubp.encoders import REGISTRY

        for name in names:
            if name not in REGISTRY.names():
                raise ConfigError(f"unknown block {name!r}; known blocks: {', '.join(sorted(REGISTRY.names()))}")

    @property
    def config_hash(self) -> str:
        payload = json.dumps(dataclasses.asdict(self), sort_keys=True, default=str)
        return hashlib.sha1(payload.encode()).hexdigest()[:12]


def shipped_recipes() -> list[str]:
    """Names of the recipes shipped with the package (`ubp run --config NAME`)."""
    return sorted(f.name.removesuffix(".toml") for f in resources.files("ubp.recipes").iterdir() if f.name.endswith(".toml"))


def load_recipe(path: Path | str | None = None) -> Recipe:
    """A recipe from a TOML file, or the shipped recipe of that name (e.g. `best`) where no such
    file exists; None gives the default recipe shipped with the package."""
    name = "default" if path is None else str(path)
    if path is None or (not Path(path).exists() and name in shipped_recipes()):
        text = resources.files("ubp.recipes").joinpath(f"{name}.toml").read_text()
        data, where = tomllib.loads(text), f"{name}.toml"
    elif not Path(path).exists():
        raise ConfigError(f"{path}: config file not found (recipes shipped by name: {', '.join(shipped_recipes())})")
    else:
        data, where = load_toml(path), str(path)
    try:
        return from_dict(Recipe, data, where)
    except ConfigError as e:  # a block's own check does not know the file it came from
        raise e if str(e).startswith(where) else ConfigError(f"{where}: {e}") from None


def recipe_for_blocks(names: list[str], seed: int = 0) -> Recipe:
    """An ad-hoc recipe: the named blocks with default options, equal weights."""
    return Recipe(blocks=tuple(BlockSpec(name=n) for n in names), seed=seed)
