"""The one small interface every profile block implements, and the run context it gets."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Protocol, runtime_checkable

import numpy as np

from ubp.data.window import InputWindow
from ubp.errors import NotFittedError


@dataclass(frozen=True)
class Run:
    """What a fit needs besides data: a seed, a device, a scratch folder, progress on/off."""

    seed: int = 0
    device: str = "cpu"
    work_dir: Path | None = None  # checkpoints of resumable fits go here
    show_progress: bool = True


@runtime_checkable
class Encoder(Protocol):
    """A block of the profile: learns from the input window, embeds any list of clients.

    `transform` returns float32 (len(client_ids), dim), rows in the order of `client_ids`;
    clients without events get a well-defined row (never NaN); a client's row does not depend on
    which other clients are asked for with it. Before `fit` (or `load`) it raises `NotFittedError`.
    `ubp.encoders.registry` names every class that satisfies this protocol. A class that trains
    across torchrun's ranks sets `fits_across_ranks = True`; any other block is fitted once, on rank 0.
    """

    name: ClassVar[str]
    preferred_normalise: ClassVar[str]  # how a profile normalises this block under `normalise = "auto"`

    def fit(self, window: InputWindow, run: Run) -> "Encoder": ...

    def transform(self, window: InputWindow, client_ids: np.ndarray) -> np.ndarray: ...

    def save(self, path: Path) -> None: ...

    @classmethod
    def load(cls, path: Path) -> "Encoder": ...


def check_fitted(encoder: object, *attributes: str) -> None:
    """Raise `NotFittedError` unless `encoder` has every fitted attribute (set by `fit` or `load`)."""
    missing = [a for a in attributes if not hasattr(encoder, a)]
    if missing:
        name = getattr(encoder, "name", type(encoder).__name__)
        raise NotFittedError(f"block {name!r}: transform before fit; call fit() or load() first (no {missing[0]})")
