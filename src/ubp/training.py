"""Small pieces every neural encoder's training loop shares: seeds, device, batches, checkpoints, progress.

A checkpoint holds the state of every module and optimiser, the global step and all RNG states,
plus a `meta` dict (config and a data fingerprint): a fit resumes only from a checkpoint of the
same config on the same data, and then ends with the weights of an uninterrupted run.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from tqdm.auto import tqdm

from ubp.errors import UsageError


class Stateful(Protocol):
    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: dict) -> Any: ...


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices) so a CPU fit is a function of its seed."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def choose_device(requested: str) -> torch.device:
    """'auto' → cuda when present, else cpu; an explicit 'cuda[:k]' without a GPU is an error."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(requested)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"device {requested!r} requested but torch sees no CUDA GPU; use 'cpu' or 'auto'")
    return device


def epoch_permutation(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The shuffle of epoch `epoch`: a function of (seed, epoch) only, so a resumed run sees the same batches."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=g)


def batch_slices(n: int, batch_size: int) -> list[slice]:
    """Batches covering 0..n; the remainder joins the last batch so no batch has a lone row (BatchNorm, in-batch negatives)."""
    steps = max(1, n // batch_size)
    return [slice(k * batch_size, (k + 1) * batch_size if k < steps - 1 else n) for k in range(steps)]


def fingerprint(*arrays: np.ndarray | torch.Tensor) -> str:
    """Digest of the training data, so a checkpoint is never resumed on other data."""
    h = hashlib.sha1()
    for a in arrays:
        a = a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)
        h.update(str((a.dtype, a.shape)).encode())
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def _rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: Path, parts: dict[str, Stateful], step: int, meta: dict[str, Any]) -> None:
    """Write modules + optimisers + step + RNG states to `path` (temporary name, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    state = {"parts": {k: v.state_dict() for k, v in parts.items()}, "step": step, "meta": meta, "rng": _rng_state()}
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path, parts: dict[str, Stateful], meta: dict[str, Any]) -> int:
    """Restore `parts` and the RNG states from `path` and return its step; 0 when absent or made for other config/data."""
    if not path.is_file():
        return 0
    state = torch.load(path, map_location="cpu", weights_only=False)
    if state["meta"] != meta:
        return 0
    for k, v in parts.items():
        v.load_state_dict(state["parts"][k])
    _set_rng_state(state["rng"])
    return int(state["step"])


def checkpoint_path(work_dir: Path | None, name: str) -> Path | None:
    return None if work_dir is None else Path(work_dir) / f"{name}.ckpt"


def progress(total: int, desc: str, enabled: bool) -> tqdm:
    """A tqdm bar drawn only on a terminal: never floods a log file."""
    return tqdm(total=total, desc=desc, disable=not (enabled and sys.stderr.isatty()), leave=False)


@contextmanager
def atomic_dir(path: Path) -> Iterator[Path]:
    """Yield a temporary folder that replaces `path` only once the block finishes: never a half-saved model."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if path.exists():
        shutil.rmtree(path)
    os.replace(tmp, path)


def run_steps(
    n_rows: int,
    *,
    epochs: int,
    batch_size: int,
    seed: int,
    step_fn: Any,
    parts: dict[str, Stateful],
    ckpt: Path | None,
    meta: dict[str, Any],
    checkpoint_every: int,
    show_progress: bool,
    desc: str,
) -> float:
    """The shared loop: shuffled row batches for `epochs`, `step_fn(rows, epoch) -> loss tensor` on each.

    Checkpoints every `checkpoint_every` steps and at each epoch end, and starts from a matching
    checkpoint in `ckpt` if one exists. Returns the mean loss of the last epoch's steps run here
    (nan when nothing was left to run).
    """
    slices = batch_slices(n_rows, batch_size)
    per_epoch = len(slices)
    total = epochs * per_epoch
    start = load_checkpoint(ckpt, parts, meta) if ckpt is not None else 0
    losses: list[torch.Tensor] = []
    perm = None
    with progress(total, desc, show_progress) as bar:
        bar.update(start)
        for step in range(start, total):
            epoch, k = divmod(step, per_epoch)
            if perm is None or k == 0:
                perm = epoch_permutation(n_rows, seed, epoch)
                losses = []
            losses.append(step_fn(perm[slices[k]], epoch).detach())
            bar.update(1)
            done = step + 1
            if ckpt is not None and (done % checkpoint_every == 0 or done % per_epoch == 0):
                save_checkpoint(ckpt, parts, done, meta)
    return float(torch.stack(losses).mean()) if losses else float("nan")


def fit_loop(name: str, n_rows: int, cfg: Any, run: Any, step_fn: Any, parts: dict[str, Stateful],
             data: tuple[torch.Tensor, ...]) -> float:
    """`run_steps` for a block: epochs, batch size and checkpoint cadence from its config `cfg`,
    seed and progress from the `run`, resuming only from a checkpoint of the same config, seed and data."""
    import dataclasses

    return run_steps(
        n_rows,
        epochs=cfg.epochs,
        batch_size=cfg.batch_size,
        seed=run.seed,
        step_fn=step_fn,
        parts=parts,
        ckpt=checkpoint_path(run.work_dir, name),
        meta={"config": dataclasses.asdict(cfg), "seed": run.seed, "data": fingerprint(*data)},
        checkpoint_every=cfg.checkpoint_every,
        show_progress=run.show_progress,
        desc=name,
    )
