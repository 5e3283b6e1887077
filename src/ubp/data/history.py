"""Clients with no history: relevant clients that have no event at all in the input window.

Every block gives such a client its empty-history row (zero counts, the longest recency, ...),
so all of them share one row; the profile adds a `no_history` column so that a downstream model
can tell "never seen" from "seen, and quiet".
"""

from __future__ import annotations

import numpy as np
import polars as pl

from ubp.data.window import InputWindow


def no_history(window: InputWindow, client_ids: np.ndarray) -> np.ndarray:
    """Boolean mask over `client_ids`: True where the client has no event in the window."""
    seen = window.stream().select("client_id").unique().collect(engine="streaming")["client_id"]
    return ~pl.Series(np.asarray(client_ids, dtype=np.int64)).is_in(seen.implode()).to_numpy()
