"""Label matrices of all six tasks, built at once with joins and aligned with the entry's rows.

The organisers compute each client's label inside `__getitem__` by scanning the whole target
table; here each task is one join per target window, so labels for a million clients take
seconds. Rules (docs/protocol.md §4): churn keeps the entry clients that are in
`active_clients.npy`, conversion keeps them all; both are 1 when the client has no
`product_buy` in the window. A propensity task is a multi-hot over the ids in
`target/<task>.npy`, matched on the column named by the last word of the task name.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from ubp.errors import UsageError, input_error
from ubp.layout import PROPENSITY_TASKS, propensity_column

WINDOWS = ("train", "validation")


@dataclass(frozen=True)
class TaskLabels:
    """One task's labels for every entry row; rows outside `scored` are not used."""

    task: str
    scored: np.ndarray  # (n_entry,) bool: the clients this task trains and validates on
    train: np.ndarray  # (n_entry, n_labels) bool, from train_target.parquet
    validation: np.ndarray  # (n_entry, n_labels) bool, from validation_target.parquet
    popularity: np.ndarray | None  # (n_labels,) for propensity tasks (Novelty), else None

    @property
    def n_labels(self) -> int:
        return self.train.shape[1]


def target_path(data_dir: Path, window: str) -> Path:
    return Path(data_dir) / "target" / f"{window}_target.parquet"


def read_target_window(path: Path, columns: list[str]) -> pl.DataFrame:
    """`client_id` plus the matched columns of one target window, as Int64."""
    if not path.is_file():
        raise input_error(path, "missing; run `ubp split --data-dir DIR` to write the target windows")
    try:
        schema = pl.read_parquet_schema(path)
    except Exception as e:  # noqa: BLE001 - any unreadable file becomes one clear line
        raise input_error(path, f"cannot be read as parquet ({type(e).__name__}: {e})") from e
    for column in columns:
        if column not in schema:
            raise input_error(path, f"missing; the file has {sorted(schema)}", column=column)
    df = pl.read_parquet(path, columns=columns)
    for column in columns:
        try:
            df = df.with_columns(pl.col(column).cast(pl.Int64))
        except pl.exceptions.PolarsError as e:
            raise input_error(path, f"cannot be read as int64 ids ({schema[column]})", column=column,
                              example=df.row(0, named=True) if len(df) else None) from e
    return df


def _load_npy(path: Path, what: str) -> np.ndarray:
    if not path.is_file():
        raise input_error(path, f"missing; it holds {what}")
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise input_error(path, f"cannot be read as a .npy array ({e})") from e


def load_targets(path: Path) -> np.ndarray:
    """A propensity target list: unique, integer-valued, 1-D."""
    raw = _load_npy(path, "the target ids of a propensity task")
    if raw.ndim != 1 or len(raw) == 0:
        raise input_error(path, f"must be a non-empty 1-D array, got shape {raw.shape}")
    targets = raw.astype(np.int64)
    if not np.array_equal(targets, raw):
        bad = int(np.flatnonzero(targets != raw)[0])
        raise input_error(path, "target ids must be integers", example=f"index {bad}: {raw[bad]}")
    uniq, counts = np.unique(targets, return_counts=True)
    if (counts > 1).any():
        raise input_error(path, "target ids must be unique", example=int(uniq[counts > 1][0]))
    return targets


def load_popularity(path: Path, n_targets: int) -> np.ndarray:
    """A popularity vector the same length as its targets, finite, not all zero."""
    pop = _load_npy(path, "one popularity value per target (used by Novelty)").astype(np.float64)
    if pop.shape != (n_targets,):
        raise input_error(path, f"shape {pop.shape} does not match the {n_targets} targets")
    if not np.isfinite(pop).all() or (pop < 0).any() or pop.max() <= 0:
        raise input_error(path, "popularity must be finite, non-negative and not all zero")
    return pop


def no_buy_labels(client_ids: np.ndarray, window: pl.DataFrame) -> np.ndarray:
    """(n, 1) bool: True where the client has no product_buy in the window."""
    buyers = window.get_column("client_id").unique().to_numpy()
    return ~np.isin(client_ids, buyers)[:, None]


def multi_hot(client_ids: np.ndarray, window: pl.DataFrame, column: str, targets: np.ndarray) -> np.ndarray:
    """(n, n_targets) bool: which target values each client bought in the window."""
    entry = pl.DataFrame({"client_id": client_ids, "row": np.arange(len(client_ids), dtype=np.int64)})
    lookup = pl.DataFrame({column: targets, "label": np.arange(len(targets), dtype=np.int64)})
    pairs = (
        window.lazy()
        .select("client_id", column)
        .join(lookup.lazy(), on=column)
        .join(entry.lazy(), on="client_id")
        .select("row", "label")
        .collect()
    )
    out = np.zeros((len(client_ids), len(targets)), dtype=bool)
    out[pairs.get_column("row").to_numpy(), pairs.get_column("label").to_numpy()] = True
    return out


def build_labels(data_dir: Path, client_ids: np.ndarray, tasks: tuple[str, ...]) -> dict[str, TaskLabels]:
    """Train and validation labels of `tasks` for the entry's clients, in the entry's order."""
    data_dir = Path(data_dir)
    client_ids = np.asarray(client_ids, dtype=np.int64)
    columns = ["client_id", *sorted({propensity_column(t) for t in tasks if t in PROPENSITY_TASKS})]
    windows = {w: read_target_window(target_path(data_dir, w), columns) for w in WINDOWS}
    everyone = np.ones(len(client_ids), dtype=bool)
    labels: dict[str, TaskLabels] = {}
    for task in tasks:
        if task in PROPENSITY_TASKS:
            targets = load_targets(data_dir / "target" / f"{task}.npy")
            popularity = load_popularity(data_dir / "target" / f"popularity_{task}.npy", len(targets))
            column = propensity_column(task)
            train, validation = (multi_hot(client_ids, windows[w], column, targets) for w in WINDOWS)
            labels[task] = TaskLabels(task, everyone, train, validation, popularity)
        elif task in ("churn", "conversion"):
            scored = everyone
            if task == "churn":
                active = _load_npy(data_dir / "target" / "active_clients.npy", "the clients churn is scored on")
                scored = np.isin(client_ids, active.astype(np.int64))
            train, validation = (no_buy_labels(client_ids, windows[w]) for w in WINDOWS)
            labels[task] = TaskLabels(task, scored, train, validation, None)
        else:
            raise UsageError(f"unknown task {task!r}")
    return labels
