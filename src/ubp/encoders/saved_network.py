"""A fitted neural block on disk: `config.json` (options and shapes) + `model.pt` (weights only, no pickle).

The block writes both into the folder it is building inside `ubp.io.atomic_dir`, beside any
nested block it depends on, so the whole folder appears at once.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ubp.io import write_json, write_with

CONFIG = "config.json"
WEIGHTS = "model.pt"


def write_network(folder: Path, params: dict, model: torch.nn.Module) -> None:
    write_json(folder / CONFIG, params)
    write_with(folder / WEIGHTS, lambda f: torch.save(model.state_dict(), f))


def read_network(path: Path | str) -> tuple[dict, dict[str, torch.Tensor]]:
    """(params, weights) of a saved block, weights on the CPU."""
    path = Path(path)
    params = json.loads((path / CONFIG).read_text())
    return params, torch.load(path / WEIGHTS, map_location="cpu", weights_only=True)


def write_nested(folder: Path, blocks: dict[str, object | None]) -> None:
    """Save each block a neural block is built on into `folder/<key>` (None: that block is absent)."""
    for key, block in blocks.items():
        if block is not None:
            block.save(folder / key)


def read_nested(folder: Path | str, names: dict[str, str | None]) -> dict[str, object | None]:
    """Load `folder/<key>` as the registered block `names[key]` (None: absent, loads as None)."""
    from ubp.encoders.registry import REGISTRY

    return {key: None if name is None else REGISTRY[name].load(Path(folder) / key) for key, name in names.items()}
