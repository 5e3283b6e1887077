"""`ubp embed --model`: a saved profile applied to any log at any date, without refitting.

Reads the log's events before `as_of` (`ubp.data.snapshot`), embeds the asked clients (the log's
relevant clients by default) with every block's saved fit (`ubp.model`), and writes the entry in
the asked format with the profile's manifest (`profile.json`: which columns come from which block).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np

from ubp.data.conversions import PrepareOptions
from ubp.data.raw import read_relevant_clients
from ubp.data.snapshot import window_at
from ubp.entry import write_entry, write_parquet_entry
from ubp.io import atomic_dir, write_json
from ubp.model import FIT_CLIENTS, ProfileModel

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EmbedSummary:
    out: Path
    n_clients: int
    width: int
    as_of: datetime
    n_unseen: int  # clients the fit never saw (every block embeds them from their own events)
    n_without_events: int  # clients with no event before as_of (each block's row for an empty history)
    seconds: float

    def describe(self) -> str:
        return (f"{self.out}: {self.n_clients:,} clients x {self.width} columns as of {self.as_of} "
                f"(saved model, no refit) in {self.seconds:.1f} s; {self.n_unseen:,} not seen at fit time, "
                f"{self.n_without_events:,} without events before {self.as_of}")


def embed_with_model(
    model_dir: Path, data_dir: Path, out: Path, cache: Path, as_of: datetime | None = None,
    clients: Path | None = None, fmt: str = "npy", dtype: str = "float16", layout: str = "list",
) -> EmbedSummary:
    """Embed clients of `data_dir` as of `as_of` with the model in `model_dir` (see module docstring)."""
    start = time.perf_counter()
    model = ProfileModel.load(model_dir)
    ids = read_relevant_clients(clients) if clients is not None else None
    edges = model.price_edges
    window = window_at(data_dir, as_of, cache, PrepareOptions(price_edges=edges) if edges is not None else None)
    if ids is None:
        ids = window.relevant_clients
    matrix = model.embed(window, ids)
    fit_path = Path(model_dir) / FIT_CLIENTS
    unseen = int((~np.isin(ids, np.load(fit_path))).sum()) if fit_path.is_file() else len(ids)
    active = window.stream().select("client_id").unique().collect()["client_id"].to_numpy()
    summary = EmbedSummary(Path(out), len(ids), model.width, window.cutoff, unseen,
                           int((~np.isin(ids, active)).sum()), round(time.perf_counter() - start, 2))
    with atomic_dir(out) as tmp:  # the whole entry folder at once: never a half entry, never an older format's files
        if fmt == "npy":
            write_entry(tmp, ids, matrix)
        else:
            names = [f"{b['name']}_{i}" for b in model.blocks for i in range(b["columns"][1] - b["columns"][0])]
            write_parquet_entry(tmp, ids, matrix, dtype=dtype, layout=layout, names=names)
        write_json(tmp / "profile.json", {
            "model": model.info, "model_dir": str(model_dir), "data_dir": str(data_dir),
            "as_of": window.cutoff.isoformat(), "format": fmt, "dtype": "float16" if fmt == "npy" else dtype,
            "layout": layout if fmt == "parquet" else None, "width": model.width, "n_clients": len(ids),
            "blocks": model.blocks, "clients_not_seen_at_fit": unseen, "clients_without_events": summary.n_without_events,
        })
    log.info("%s", summary.describe())
    return summary
