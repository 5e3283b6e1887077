"""The profile: fit each block (cached), normalise, weight, concatenate, write the entry.

Blocks are fitted on the input window and cached under `blocks_dir/<name>-<key>/`, the key
being the block's options, the seed and the window's fingerprint: changing one block's
options refits that block only.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

import ubp
from ubp.data.window import InputWindow
from ubp.encoders import create
from ubp.encoders.base import Run
from ubp.chunks import column_sum, spans
from ubp import store
from ubp.entry import atomic_save_npy, write_entry
from ubp.recipe import BlockSpec, Recipe

log = logging.getLogger(__name__)

PCA_FIT_ROWS = 200_000  # rows a block's PCA is fitted on (a 1,127-column block: 1.7 GiB of float64)


def window_fingerprint(window: InputWindow) -> str:
    """Identifies the window's content: its manifest and the data folder it came from."""
    manifest = store.read_bytes(store.join(window.root, "window.json"))
    return hashlib.sha1(manifest + window.root.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class BlockMatrix:
    spec: BlockSpec
    matrix: np.ndarray  # float32 (n_clients, dim), rows in the order of the profile's client ids
    cached: bool
    seconds: float


def fit_block(
    spec: BlockSpec, window: InputWindow, client_ids: np.ndarray, blocks_dir: Path, run: Run
) -> BlockMatrix:
    """Fit `spec` on the window (or reuse a cached fit) and embed `client_ids`."""
    import time

    key = f"{spec.name}-{spec.fit_key(run.seed)}-{window_fingerprint(window)}"
    folder = Path(blocks_dir) / key
    matrix_path = folder / "matrix.npy"
    ids_path = folder / "client_ids.npy"
    if matrix_path.is_file() and ids_path.is_file() and np.array_equal(np.load(ids_path), client_ids):
        log.info("block %s: cached (%s)", spec.name, folder)
        return BlockMatrix(spec, np.load(matrix_path), cached=True, seconds=0.0)
    start = time.perf_counter()
    log.info("block %s: fitting", spec.name)
    block_run = Run(
        seed=run.seed, device=run.device, work_dir=folder / "work", show_progress=run.show_progress
    )
    (folder / "work").mkdir(parents=True, exist_ok=True)
    encoder = create(spec.name, **spec.options).fit(window, block_run)
    matrix = np.asarray(encoder.transform(window, client_ids), dtype=np.float32)
    finite = all(np.isfinite(matrix[r]).all() for r in spans(len(matrix)))  # no n x dim mask
    if matrix.shape[0] != len(client_ids) or not finite:
        raise RuntimeError(f"block {spec.name}: transform returned shape {matrix.shape} or non-finite values")
    model_tmp = folder / "model.tmp"
    shutil.rmtree(model_tmp, ignore_errors=True)
    encoder.save(model_tmp)
    shutil.rmtree(folder / "model", ignore_errors=True)
    model_tmp.rename(folder / "model")
    atomic_save_npy(matrix_path, matrix)
    atomic_save_npy(ids_path, client_ids)
    shutil.rmtree(folder / "work", ignore_errors=True)
    return BlockMatrix(spec, matrix, cached=False, seconds=round(time.perf_counter() - start, 2))



def _scaler(x: np.ndarray, method: str) -> Callable[[np.ndarray], np.ndarray]:
    """The row-chunk map (float64 in, float64 out) of `method`, its column statistics taken over all of `x`."""
    if method == "standardize":
        n = max(len(x), 1)
        mean = column_sum((x[r].astype(np.float64) for r in spans(len(x))), x.shape[1]) / n
        deviations = (np.square(x[r].astype(np.float64) - mean) for r in spans(len(x)))
        std = np.sqrt(column_sum(deviations, x.shape[1]) / n)
        std = np.where(std > 1e-12, std, 1.0)
        return lambda c: np.clip((c - mean) / std, -5.0, 5.0)
    if method == "l2":
        root_d = np.sqrt(x.shape[1])

        def l2(c: np.ndarray) -> np.ndarray:
            norms = np.linalg.norm(c, axis=1, keepdims=True)
            return c / np.where(norms > 1e-12, norms, 1.0) * root_d

        return l2
    return lambda c: c


def normalise(
    matrix: np.ndarray, spec: BlockSpec, seed: int, out: np.ndarray | None = None
) -> tuple[np.ndarray, dict]:
    """Scale a block so that each block has unit variance per column on average, then weight it.

    The float64 arithmetic runs on row chunks written straight into `out` (float32, e.g. the
    block's columns of the profile), so memory is the output plus one chunk. PCA is fitted on at
    most `PCA_FIT_ROWS` rows (a seeded sample), then applied chunk by chunk: a full-scale block of
    a million rows would otherwise need a float64 copy of itself (8 GiB for `features`)."""
    method = spec.resolved_normalise
    info: dict = {"normalise": method, "in_dim": int(matrix.shape[1])}
    scale = _scaler(matrix, method)
    project, out_dim = scale, matrix.shape[1]
    if spec.pca is not None and spec.pca < matrix.shape[1]:
        from sklearn.decomposition import PCA

        rows = np.arange(len(matrix))
        if len(rows) > PCA_FIT_ROWS:
            rows = np.sort(np.random.default_rng(seed).choice(len(matrix), PCA_FIT_ROWS, replace=False))
        sample = scale(matrix[rows].astype(np.float64))
        pca = PCA(n_components=spec.pca, random_state=seed, svd_solver="randomized").fit(sample)
        fitted = pca.transform(sample)
        rms = max(float(np.sqrt((fitted**2).sum(axis=1).mean() / fitted.shape[1])), 1e-12)
        info["pca_explained_variance"] = round(float(pca.explained_variance_ratio_.sum()), 4)
        info["pca_fit_rows"] = int(len(rows))
        project, out_dim = (lambda c: pca.transform(scale(c)) / rms), spec.pca
    info["out_dim"] = int(out_dim)
    if out is None:
        out = np.empty((len(matrix), out_dim), dtype=np.float32)
    for r in spans(len(matrix)):
        out[r] = project(matrix[r].astype(np.float64)) * spec.weight
    return out, info


def blend(blocks: list[BlockMatrix], recipe: Recipe) -> tuple[np.ndarray, list[dict]]:
    """Concatenate normalised, weighted blocks (weight 0 drops a block) within max_width.

    When the blocks are wider than max_width together, each block without an explicit
    `pca` is compressed by PCA to its proportional share of the width. Blocks are written into
    one preallocated float32 matrix (a lone block into its own matrix), and `blocks` is emptied
    as they are, so each block's matrix is freed (if the caller holds no other reference) once
    its columns are in place.
    """
    kept = [b for b in blocks if b.spec.weight > 0]
    if not kept:
        raise ValueError("every block has weight 0: nothing to blend")
    blocks.clear()
    total = sum(b.spec.pca or b.matrix.shape[1] for b in kept)
    specs = []
    for block in kept:
        spec = block.spec
        if total > recipe.max_width and spec.pca is None:
            share = max(int(block.matrix.shape[1] * recipe.max_width / total), 1)
            spec = BlockSpec(spec.name, spec.weight, spec.normalise, share, spec.options)
        specs.append(spec)
    widths = [s.pca if s.pca is not None and s.pca < b.matrix.shape[1] else b.matrix.shape[1] for s, b in zip(specs, kept)]
    only = kept[0].matrix
    if len(kept) == 1 and widths[0] == only.shape[1] and only.dtype == np.float32 and only.flags.writeable:
        out = only  # one block: normalised in place (each row chunk is read before it is written)
    else:
        out = np.empty((len(only), sum(widths)), dtype=np.float32)
    manifest, start = [], 0
    for spec, width in zip(specs, widths):
        block = kept.pop(0)
        _, info = normalise(block.matrix, spec, recipe.seed, out=out[:, start : start + width])
        del block
        manifest.append(
            {"name": spec.name, "columns": [start, start + width], "weight": spec.weight, **info,
             "options": spec.options, "fit_key": spec.fit_key(recipe.seed)}
        )
        start += width
    return out, manifest


def build_profile(
    window: InputWindow, recipe: Recipe, out_dir: Path, blocks_dir: Path, run: Run,
    client_ids: np.ndarray | None = None,
) -> dict:
    """Fit every block, blend, and write the entry with its `profile.json` manifest."""
    ids = window.relevant_clients if client_ids is None else np.asarray(client_ids, dtype=np.int64)
    if len(ids) == 0:
        raise ValueError(f"{store.join(window.root, 'relevant_clients.npy')}: no clients to embed")
    blocks = [fit_block(spec, window, ids, blocks_dir, run) for spec in recipe.blocks]
    fit_seconds = {b.spec.name: b.seconds for b in blocks}
    cached = [b.spec.name for b in blocks if b.cached]
    matrix, manifest = blend(blocks, recipe)  # empties `blocks`: no block matrix outlives its columns
    write_entry(out_dir, ids, matrix)
    profile = {
        "package_version": ubp.__version__,
        "config_hash": recipe.config_hash,
        "recipe": asdict(recipe),
        "width": int(matrix.shape[1]),
        "n_clients": int(len(ids)),
        "blocks": manifest,
        "block_fit_seconds": fit_seconds,
        "cached_blocks": cached,
        "absent_event_types": window.absent_event_types,
    }
    tmp = Path(out_dir) / "profile.json.tmp"
    tmp.write_text(json.dumps(profile, indent=1, default=str))
    tmp.replace(Path(out_dir) / "profile.json")
    return profile
