"""The one checkpoint format of every neural block, and its rule on a mismatch.

A checkpoint holds the state of every part (modules, optimisers, schedulers), the number of steps
done, the world size, every rank's RNG states and a `settings` dict (the block's config, the seed,
a fingerprint of the training data). Resuming restores all of it, so a killed run ends with the
weights of an unbroken one. A checkpoint made with other settings or by another number of
processes is an error that names what differs: it is never silently overwritten nor resumed.

Rank 0 alone touches the file: it writes it (after gathering the other ranks' RNG states) and
reads it on resume, then hands each rank its part.
"""

from __future__ import annotations

import hashlib
import random
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from ubp import distributed
from ubp.errors import UbpError
from ubp.io import atomic_path

FORMAT = 1


class CheckpointMismatch(UbpError, ValueError):
    """A checkpoint in the work folder was made with other settings or another world size."""


class Stateful(Protocol):
    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: dict) -> Any: ...


def fingerprint(*arrays: np.ndarray | torch.Tensor) -> str:
    """Digest of the training data, so a checkpoint is never resumed on other data."""
    h = hashlib.sha1()
    for a in arrays:
        a = a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)
        h.update(str((a.dtype, a.shape)).encode())
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def rng_state() -> dict[str, Any]:
    """This process's RNG states: python, numpy, torch's CPU generator and its current GPU's."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


def save_checkpoint(path: Path, parts: dict[str, Stateful], step: int, settings: dict[str, Any]) -> None:
    """Write the parts, `step`, the world size and every rank's RNG states to `path` (atomically, rank 0 only).

    Every rank must call it: the RNG states are gathered from all of them.
    """
    rngs = distributed.all_gather(rng_state())
    if not distributed.is_main():
        return
    state = {
        "format": FORMAT,
        "step": step,
        "world_size": distributed.world_size(),
        "settings": settings,
        "parts": {k: v.state_dict() for k, v in parts.items()},
        "rng": rngs,
    }
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: Path, parts: dict[str, Stateful], settings: dict[str, Any]) -> int:
    """Restore `parts` and this rank's RNG states from `path` and return its step; 0 when there is none.

    Every rank must call it. Raises `CheckpointMismatch` when the checkpoint was made with
    other `settings` or by another number of processes.
    """
    state = _read(path) if distributed.is_main() else None
    problem = None if state is None else _mismatch(path, state, settings)
    found, problem = distributed.broadcast((state is not None, problem))
    if problem is not None:
        raise CheckpointMismatch(problem)
    if not found:
        return 0
    state = distributed.broadcast(state)
    for k, v in parts.items():
        v.load_state_dict(state["parts"][k])
    set_rng_state(state["rng"][distributed.rank()])
    return int(state["step"])


def _read(path: Path) -> dict[str, Any] | None:
    if not Path(path).is_file():
        return None
    return torch.load(path, map_location="cpu", weights_only=False)


def _mismatch(path: Path, state: dict[str, Any], settings: dict[str, Any]) -> str | None:
    """What makes `state` unusable for this run, as one message naming the keys; None when it fits."""
    where = f"{path}: checkpoint"
    hint = "; remove it or use another work folder"
    if state.get("format") != FORMAT:
        return f"{where} in another format ({state.get('format')!r}, expected {FORMAT}){hint}"
    if state["world_size"] != distributed.world_size():
        return (f"{where} written by {state['world_size']} processes, this run has {distributed.world_size()}: "
                f"resume with the same number of processes{hint}")
    differ = diff_keys(state["settings"], settings)
    if differ:
        shown = ", ".join(f"{k} (checkpoint {a!r}, now {b!r})" for k, a, b in differ[:8])
        more = f" and {len(differ) - 8} more" if len(differ) > 8 else ""
        return f"{where} made with other settings: {shown}{more}{hint}"
    return None


def diff_keys(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[tuple[str, Any, Any]]:
    """(dotted key, old value, new value) for every key whose value differs (nested dicts recursed)."""
    out = []
    for key in sorted(set(old) | set(new), key=str):
        a, b = old.get(key, "<absent>"), new.get(key, "<absent>")
        name = f"{prefix}{key}"
        if isinstance(a, dict) and isinstance(b, dict):
            out += diff_keys(a, b, f"{name}.")
        elif a != b:
            out.append((name, a, b))
    return out
