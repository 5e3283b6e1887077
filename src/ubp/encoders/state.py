"""A fitted table-like block on disk: `params.json` + `state.npz` (no pickle), swapped in as one folder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ubp.errors import input_error
from ubp.io import atomic_dir, atomic_file, write_text


def save_state(path: Path | str, params: dict, arrays: dict[str, np.ndarray]) -> None:
    """Write params.json + state.npz into `path`, swapped in together (`ubp.io.atomic_dir`)."""
    with atomic_dir(path) as tmp:
        write_text(tmp / "params.json", json.dumps(params, indent=1, default=str))
        with atomic_file(tmp / "state.npz") as f:
            np.savez(f, **arrays)


def load_state(path: Path | str) -> tuple[dict, dict[str, np.ndarray]]:
    path = Path(path)
    for name in ("params.json", "state.npz"):
        if not (path / name).is_file():
            raise input_error(path / name, "missing; a saved block holds params.json and state.npz")
    with np.load(path / "state.npz", allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    return json.loads((path / "params.json").read_text()), arrays
