"""The profile: fit each block (cached), normalise, weight, concatenate, write the entry (and the model).

A fitted block is cached under `blocks_dir/<name>-<key>/`, the key a digest of the block's name,
options and seed, the code version of its encoder (`ubp.fingerprint.code_version`) and the
content of the input window it was fitted on: changing one block's options or code refits that
block only, a rewritten log refits every block, a moved data folder refits nothing.
"""

from __future__ import annotations

import logging
import posixpath
import shutil
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

import ubp
from ubp import distributed
from ubp.cache import touch, write_meta
from ubp.chunks import spans
from ubp.data.history import no_history
from ubp.data.window import MANIFEST, PRODUCTS, RELEVANT, InputWindow
from ubp.encoders import REGISTRY, create
from ubp.encoders.registry import block_options
from ubp.encoders.base import Run
from ubp import store
from ubp.entry import write_entry
from ubp.fingerprint import code_version, digest, files_fingerprint
from ubp.io import save_npy, write_json
from ubp.normaliser import Normaliser, fit_normaliser
from ubp.recipe import BlockSpec, Recipe
from ubp.config import ConfigError, to_dict
from ubp.errors import input_error

log = logging.getLogger(__name__)

MODEL = "model"  # the fitted encoder's folder inside a cache entry


def window_fingerprint(window: InputWindow) -> str:
    """Digest of the window's content: its manifest, event shards, products and relevant clients."""
    names = [MANIFEST, PRODUCTS, RELEVANT, *(posixpath.relpath(s, window.root) for s in window.shards)]
    return digest(files_fingerprint(window.root, names))


def block_key(spec: BlockSpec, seed: int, window: InputWindow, window_fp: str) -> dict:
    """Everything a fitted block depends on (not its weight or normalisation: those act after it).

    The options enter as the block resolves them (defaults and preset filled in, `1` and `1.0`
    alike), so two spellings of one configuration share one fit."""
    cls = REGISTRY[spec.name]
    resolved = block_options(spec.name, spec.options)
    options = spec.options if resolved is None else to_dict(resolved)
    key = {"block": spec.name, "options": options, "seed": seed, "code": code_version(cls.__module__),
           "window": window_fp}
    beside = getattr(cls, "reads_beside_window", ())  # files a block reads in DIR beside the window (the oracle)
    if beside:
        key["beside_window"] = files_fingerprint(window.data_dir, list(beside))
    return key


@dataclass(frozen=True)
class BlockMatrix:
    spec: BlockSpec
    matrix: np.ndarray | None  # float32 (n_clients, dim), rows in the order of the profile's client ids; None off rank 0
    cached: bool
    seconds: float
    model_dir: Path | None = None  # the fitted encoder (saved), when it came from `fit_block`


def fit_block(
    spec: BlockSpec, window: InputWindow, client_ids: np.ndarray, blocks_dir: Path, run: Run,
    window_fp: str | None = None,
) -> BlockMatrix:
    """Fit `spec` on the window (or load the cached fit) and embed `client_ids`.

    Under torchrun a block that trains across ranks (`fits_across_ranks`: the sequence block, its
    batches split by rank) fits on every rank; any other block fits once, on rank 0, while the other
    ranks wait. Every rank then embeds its share of the clients with rank 0's saved model; rank 0
    writes the folder and gets the rows, the other ranks get None.
    """
    key = block_key(spec, run.seed, window, window_fp or window_fingerprint(window))
    folder = Path(blocks_dir) / f"{spec.name}-{digest(key)}"
    matrix_path, ids_path = folder / "matrix.npy", folder / "client_ids.npy"
    if distributed.broadcast((folder / "meta.json").is_file()):  # rank 0 decides: every rank takes one branch
        same = distributed.is_main() and np.array_equal(np.load(ids_path), client_ids)
        if distributed.is_main():
            touch(folder)
        if distributed.broadcast(same):
            log.info("block %s: cached (%s)", spec.name, folder)
            matrix = np.load(matrix_path) if distributed.is_main() else None
            return BlockMatrix(spec, matrix, cached=True, seconds=0.0, model_dir=folder / MODEL)
        log.info("block %s: cached fit (%s), embedding %d other clients", spec.name, folder, len(client_ids))
        encoder = REGISTRY[spec.name].load(folder / MODEL)
        return BlockMatrix(spec, shared_rows(encoder, spec.name, window, client_ids), cached=True, seconds=0.0,
                           model_dir=folder / MODEL)
    start = time.perf_counter()
    log.info("block %s: fitting", spec.name)
    # scratch per rank; checkpoints are read and written by rank 0 only, in its work folder
    work = folder / ("work" if distributed.is_main() else f"work-rank{distributed.rank()}")
    block_run = Run(seed=run.seed, device=run.device, work_dir=work, show_progress=run.show_progress)
    encoder = None
    if distributed.is_main() or getattr(REGISTRY[spec.name], "fits_across_ranks", False):
        work.mkdir(parents=True, exist_ok=True)
        encoder = create(spec.name, **spec.options).fit(window, block_run)
    if distributed.is_main():
        encoder.save(folder / MODEL)
    if distributed.world_size() > 1:  # every rank embeds its share with rank 0's saved model
        distributed.barrier()
        if not distributed.is_main():
            encoder = REGISTRY[spec.name].load(folder / MODEL)
    matrix = shared_rows(encoder, spec.name, window, client_ids)
    if not distributed.is_main():
        shutil.rmtree(work, ignore_errors=True)
        return BlockMatrix(spec, None, cached=False, seconds=round(time.perf_counter() - start, 2))
    save_npy(matrix_path, matrix)
    save_npy(ids_path, client_ids)
    shutil.rmtree(work, ignore_errors=True)
    write_meta(folder, "blocks", {**key, "data_dir": str(window.data_dir), "n_clients": len(client_ids)})
    return BlockMatrix(spec, matrix, cached=False, seconds=round(time.perf_counter() - start, 2), model_dir=folder / MODEL)


def shared_rows(encoder, name: str, window: InputWindow, client_ids: np.ndarray) -> np.ndarray | None:
    """`checked_rows` of this rank's share of `client_ids`, gathered in order on rank 0 (None on the others)."""
    if distributed.world_size() == 1:
        return checked_rows(encoder, name, window, client_ids)
    return distributed.gather_rows(checked_rows(encoder, name, window, client_ids[distributed.share(len(client_ids))]))


def checked_rows(encoder, name: str, window: InputWindow, client_ids: np.ndarray) -> np.ndarray:
    """The encoder's float32 rows for `client_ids`, checked for shape and finiteness."""
    matrix = np.asarray(encoder.transform(window, client_ids), dtype=np.float32)
    finite = all(np.isfinite(matrix[r]).all() for r in spans(len(matrix)))  # no n x dim mask
    if matrix.shape[0] != len(client_ids) or not finite:
        raise RuntimeError(f"block {name}: transform returned shape {matrix.shape} or non-finite values")
    return matrix


def normalise(
    matrix: np.ndarray, spec: BlockSpec, seed: int, out: np.ndarray | None = None
) -> tuple[np.ndarray, dict, Normaliser]:
    """Fit the block's normaliser on `matrix` and write its rows into `out` (float32, e.g. the
    block's columns of the profile; memory stays the output plus one chunk)."""
    normaliser, info = fit_normaliser(matrix, spec.resolved_normalise, spec.weight, spec.pca, seed)
    if out is None:
        out = np.empty((len(matrix), normaliser.out_dim), dtype=np.float32)
    normaliser.apply_into(matrix, out)
    return out, info, normaliser


def blend(blocks: list[BlockMatrix], recipe: Recipe) -> tuple[np.ndarray, list[dict], list[Normaliser]]:
    """Concatenate normalised, weighted blocks (weight 0 drops a block) within max_width.

    When the blocks are wider than max_width together, each block without an explicit
    `pca` is compressed by PCA to its proportional share of the width. Blocks are written into
    one preallocated float32 matrix (a lone block into its own matrix), and `blocks` is emptied
    as they are, so each block's matrix is freed (if the caller holds no other reference) once
    its columns are in place. Returns the matrix, the manifest (columns of each block) and the
    fitted normalisers.
    """
    kept = [b for b in blocks if b.spec.weight > 0]
    if not kept:
        raise ConfigError("every block has weight 0: nothing to blend")
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
    manifest, normalisers, start = [], [], 0
    for spec, width in zip(specs, widths):
        block = kept.pop(0)
        _, info, normaliser = normalise(block.matrix, spec, recipe.seed, out=out[:, start : start + width])
        del block
        manifest.append(
            {"name": spec.name, "columns": [start, start + width], "weight": spec.weight, **info,
             "options": spec.options, "fit_key": spec.fit_key(recipe.seed)}
        )
        normalisers.append(normaliser)
        start += width
    return out, manifest, normalisers


def build_profile(
    window: InputWindow, recipe: Recipe, out_dir: Path | None, blocks_dir: Path, run: Run,
    client_ids: np.ndarray | None = None, model_dir: Path | None = None,
) -> dict:
    """Fit every block, blend, and write the entry with its `profile.json` manifest (unless
    `out_dir` is None); with `model_dir`, also the fitted profile as a self-contained model folder
    (`ubp.model`). Under torchrun the ranks fit the blocks together (`fit_block`) and each embeds
    its share of the clients; rank 0 blends and writes, the other ranks return {}."""
    ids = window.relevant_clients if client_ids is None else np.asarray(client_ids, dtype=np.int64)
    if len(ids) == 0:
        raise input_error(store.join(window.root, RELEVANT), "no clients to embed")
    n_unseen = int(no_history(window, ids).sum())
    if n_unseen and "no_history" not in {b.name for b in recipe.blocks}:
        log.warning("%d of %d clients have no event in the input window: the profile gets a no_history column",
                    n_unseen, len(ids))
        recipe = replace(recipe, blocks=(*recipe.blocks, BlockSpec("no_history", normalise="none")))
    window_fp = window_fingerprint(window)
    blocks = [fit_block(spec, window, ids, blocks_dir, run, window_fp) for spec in recipe.blocks]
    if not distributed.is_main():
        return {}
    fit_seconds = {b.spec.name: b.seconds for b in blocks}
    cached = [b.spec.name for b in blocks if b.cached]
    encoders = {b.spec.name: b.model_dir for b in blocks}
    matrix, manifest, normalisers = blend(blocks, recipe)  # empties `blocks`: no block matrix outlives its columns
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
        "window": window_fp,
        "no_history_clients": n_unseen,
        "no_history_column": next((b["columns"][0] for b in manifest if b["name"] == "no_history"), None),
    }
    if out_dir is not None:
        write_entry(out_dir, ids, matrix)
        write_json(Path(out_dir) / "profile.json", profile)
    if model_dir is not None:
        from ubp.model import save_model

        save_model(model_dir, recipe, manifest, normalisers, encoders, window, window_fp, fit_clients=ids)
    return profile
