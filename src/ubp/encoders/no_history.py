"""`no_history`: 1 for a client with no event at all in the window, 0 for everyone else.

Every other block gives such a client its empty-history row, which all of them share; this one
column lets a downstream model tell "never seen" from "seen, and quiet". A profile adds it by
itself when some of its clients have no history (`ubp.profile.build_profile`), so a fitted model
carries it and applies it to new clients like any block.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np

from ubp.data.history import no_history
from ubp.data.window import InputWindow
from ubp.encoders.base import Run, check_fitted
from ubp.encoders.options import NoHistoryOptions
from ubp.encoders.state import load_state, save_state


class NoHistoryEncoder:
    name: ClassVar[str] = "no_history"
    preferred_normalise: ClassVar[str] = "none"  # an indicator: 0 or 1 as it is

    def __init__(self, options: NoHistoryOptions | None = None) -> None:
        self.options = options or NoHistoryOptions()

    def fit(self, window: InputWindow, run: Run | None = None) -> "NoHistoryEncoder":
        self.fitted_ = True  # nothing to learn: the indicator reads the window it embeds
        return self

    def transform(self, window: InputWindow, client_ids: np.ndarray) -> np.ndarray:
        check_fitted(self, "fitted_")
        return no_history(window, client_ids).astype(np.float32)[:, None]

    def save(self, path: Path) -> None:
        save_state(path, {}, {})

    @classmethod
    def load(cls, path: Path) -> "NoHistoryEncoder":
        load_state(path)
        return cls().fit(None)
