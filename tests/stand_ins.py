"""Stand-in blocks for tests of blocks that consume another block's output."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
import polars as pl
import pytest
import torch


class EventCounts:
    """A minimal block: log1p count of each event type (5 columns)."""

    name = "test_event_counts"

    def fit(self, window, run) -> "EventCounts":
        return self

    def transform(self, window, client_ids: np.ndarray) -> np.ndarray:
        counts = window.stream().group_by("client_id", "event_type").len().collect()
        wanted = pl.DataFrame({"client_id": np.asarray(client_ids, dtype=np.int64)}).with_row_index("row")
        long = wanted.join(counts, on="client_id", how="inner")
        out = np.zeros((len(client_ids), 5), dtype=np.float32)
        out[long["row"].to_numpy(), long["event_type"].to_numpy().astype(int)] = np.log1p(long["len"].to_numpy())
        return out

    def save(self, path: Path) -> None:
        Path(path).mkdir(parents=True)

    @classmethod
    def load(cls, path: Path) -> "EventCounts":
        return cls()


def fit_killed_then_resumed(fit: Callable[[], Any], monkeypatch: pytest.MonkeyPatch, kill_at: int) -> tuple[Any, int]:
    """Run `fit` killed right after its `kill_at`-th checkpoint, then run it again so it resumes.

    Returns the resumed fit and the number of checkpoints written by both runs together.
    """
    from ubp.training import checkpoint

    saves: list[int] = []
    real_save = checkpoint.save_checkpoint

    def save_then_maybe_die(*args: Any, **kwargs: Any) -> None:
        real_save(*args, **kwargs)
        saves.append(1)
        if len(saves) == kill_at:
            raise KeyboardInterrupt

    monkeypatch.setattr(checkpoint, "save_checkpoint", save_then_maybe_die)
    with pytest.raises(KeyboardInterrupt):
        fit()
    return fit(), len(saves)


def assert_same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(x, y), name
