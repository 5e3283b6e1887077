"""Stand-in blocks for tests of blocks that consume another block's output."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl


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
