"""A fitted profile as a folder you can copy: every block's fitted state, normalisation, PCA and
weights, the recipe, the code version, the input schema and the fit window's dates.

`ProfileModel.load(MODEL).embed(window, client_ids)` maps any clients of any input window to
profile rows without refitting and without anything else from the fit (no world, no cache): the
same arrays and the same arithmetic as the fit, so the fit-time window gives the fit-time entry
bit for bit.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import polars as pl

import ubp
from ubp import store
from ubp.data.prepare import prepared_dir
from ubp.data.raw import EVENT_COLUMNS, PROPERTY_COLUMNS
from ubp.data.window import InputWindow
from ubp.encoders import REGISTRY
from ubp.errors import UsageError
from ubp.fingerprint import code_version
from ubp.io import atomic_dir, save_npy, write_bytes, write_json
from ubp.layout import STREAM_SCHEMA
from ubp.normaliser import Normaliser
from ubp.profile import checked_rows
from ubp.recipe import Recipe

log = logging.getLogger(__name__)

MODEL_JSON = "model.json"
FIT_CLIENTS = "fit_clients.npy"  # who the profile was fitted on: embed reports the clients it never saw
PRICE_EDGES = "price_edges.json"  # the fit log's float-price bucket edges: a later log's prices fall in the same buckets
FORMAT = 1
# Blocks that read something beside the log rather than a fitted state: a model cannot carry them.
NOT_PORTABLE = {"oracle": "the synthetic world's hidden state, read from the world folder, not a fitted model"}


def save_model(
    model_dir: Path, recipe: Recipe, manifest: list[dict], normalisers: list[Normaliser],
    encoders: dict[str, Path | None], window: InputWindow, window_fp: str, fit_clients: np.ndarray,
) -> None:
    """Write MODEL/ (see module docstring) from the cached fitted encoders, atomically."""
    first = window.stream().select(pl.col("timestamp").min()).collect().item()
    info = {
        "format": FORMAT,
        "package_version": ubp.__version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "recipe": asdict(recipe),
        "config_hash": recipe.config_hash,
        "width": int(sum(b["columns"][1] - b["columns"][0] for b in manifest)),
        "blocks": [{**b, "code": code_version(REGISTRY[b["name"]].__module__)} for b in manifest],
        "input_schema": {
            "events": {t: dict(cols) for t, cols in EVENT_COLUMNS.items()},
            "product_properties": dict(PROPERTY_COLUMNS),
            "stream": {c: str(t) for c, t in STREAM_SCHEMA.items()},
        },
        "fit_window": {
            "first_event": first.isoformat() if first is not None else None,
            "cutoff": window.cutoff.isoformat(),
            "event_counts": window.event_counts,
            "n_clients": int(len(fit_clients)),
            "fingerprint": window_fp,
        },
    }
    with atomic_dir(model_dir) as tmp:
        for block, normaliser in zip(manifest, normalisers):
            name = block["name"]
            source = encoders.get(name)
            if source is None or not Path(source).is_dir():
                raise RuntimeError(f"block {name}: no saved encoder to put in the model")
            shutil.copytree(source, tmp / "blocks" / name / "encoder")
            normaliser.save(tmp / "blocks" / name / "normaliser.npz")
        save_npy(tmp / FIT_CLIENTS, np.asarray(fit_clients, dtype=np.int64))
        edges = _fit_price_edges(window)
        if edges is not None:
            write_bytes(tmp / PRICE_EDGES, store.read_bytes(edges))
        write_json(tmp / MODEL_JSON, info)


def _fit_price_edges(window: InputWindow) -> str | None:
    """The prepared store's price edges beside the fit window (local or in a store), when its log had float prices."""
    path = store.join(prepared_dir(window.data_dir), PRICE_EDGES)
    return path if store.is_file(path) else None


@dataclass(frozen=True)
class ProfileModel:
    root: Path
    info: dict

    @classmethod
    def load(cls, root: Path | str) -> "ProfileModel":
        root = Path(root)
        path = root / MODEL_JSON
        if not path.is_file():
            raise UsageError(f"{path}: missing; a model folder is written by `ubp fit` or `ubp run` (RUN/model)")
        info = json.loads(path.read_text())
        if info.get("format") != FORMAT:
            raise UsageError(f"{path}: model format {info.get('format')!r}, this ubp reads format {FORMAT}")
        for block in info["blocks"]:
            if block["name"] in NOT_PORTABLE:
                raise UsageError(f"{root}: block {block['name']!r} is {NOT_PORTABLE[block['name']]}; it cannot embed from a model")
            if not (root / "blocks" / block["name"] / "normaliser.npz").is_file():
                raise UsageError(f"{root / 'blocks' / block['name']}: missing; the model folder is incomplete")
        if info["package_version"] != ubp.__version__:
            log.warning("model %s was fitted with ubp %s, this is ubp %s", root, info["package_version"], ubp.__version__)
        return cls(root, info)

    @property
    def width(self) -> int:
        return int(self.info["width"])

    @property
    def blocks(self) -> list[dict]:
        return self.info["blocks"]

    @property
    def fit_cutoff(self) -> datetime:
        return datetime.fromisoformat(self.info["fit_window"]["cutoff"])

    @property
    def price_edges(self) -> Path | None:
        """The fit log's price bucket edges (None when it had integer buckets)."""
        path = self.root / PRICE_EDGES
        return path if path.is_file() else None

    def embed(self, window: InputWindow, client_ids: np.ndarray) -> np.ndarray:
        """float32 (len(client_ids), width): every block's saved encoder and normaliser, no refit."""
        client_ids = np.asarray(client_ids, dtype=np.int64)
        out = np.empty((len(client_ids), self.width), dtype=np.float32)
        for block in self.blocks:
            name, (lo, hi) = block["name"], block["columns"]
            folder = self.root / "blocks" / name
            log.info("block %s: applying the saved fit to %d clients (no refit)", name, len(client_ids))
            matrix = checked_rows(REGISTRY[name].load(folder / "encoder"), name, window, client_ids)
            Normaliser.load(folder / "normaliser.npz").apply_into(matrix, out[:, lo:hi])
        return out
