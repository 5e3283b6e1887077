"""Label matrices of all six tasks: built at once with joins, then aligned with an entry's rows.

The organisers compute each client's label inside `__getitem__` by scanning the whole target
table; here each task is one join per target window, so labels for a million clients take
seconds. Rules (docs/protocol.md §4): churn keeps the entry clients that are in
`active_clients.npy`, conversion keeps them all; both are 1 when the client has no
`product_buy` in the window. A propensity task is a multi-hot over the ids in
`target/<task>.npy`, matched on the column named by the last word of the task name.
Each task is first a `TaskTable` of (client, label) pairs that depends on no entry (the form the
label cache stores), then aligned with an entry's rows by a sorted lookup.
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


@dataclass(frozen=True)
class TaskTable:
    """One task's labels keyed by client id, before any entry is seen: the form that is cached.

    `positives[window]` holds the (client_id, label index) pairs that are set; for a churn-type
    task (`no_buy`) they are the window's buyers, whose label is 0 while everyone else's is 1.
    """

    task: str
    n_labels: int
    no_buy: bool
    positives: dict[str, tuple[np.ndarray, np.ndarray]]  # window -> (client_id int64, label int64)
    scored_ids: np.ndarray | None  # churn: the active clients; None: every entry client is scored
    popularity: np.ndarray | None

    def align(self, client_ids: np.ndarray) -> TaskLabels:
        """The labels of the entry's clients, in the entry's row order (ids must be unique)."""
        client_ids = np.asarray(client_ids, dtype=np.int64)
        matrices = []
        for window in WINDOWS:
            clients, labels = self.positives[window]
            if self.no_buy:
                matrices.append(~np.isin(client_ids, clients)[:, None])
                continue
            hit, rows = entry_rows(client_ids, clients)
            out = np.zeros((len(client_ids), self.n_labels), dtype=bool)
            out[rows, labels[hit]] = True
            matrices.append(out)
        scored = np.ones(len(client_ids), dtype=bool) if self.scored_ids is None else np.isin(client_ids, self.scored_ids)
        return TaskLabels(self.task, scored, matrices[0], matrices[1], self.popularity)


def entry_rows(client_ids: np.ndarray, wanted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(hit, rows): which `wanted` ids the entry holds, and the entry row of each one held."""
    order = np.argsort(client_ids, kind="stable")
    sorted_ids = client_ids[order]
    if len(sorted_ids) == 0:
        return np.zeros(len(wanted), dtype=bool), np.zeros(0, dtype=np.int64)
    pos = np.minimum(np.searchsorted(sorted_ids, wanted), len(sorted_ids) - 1)
    hit = sorted_ids[pos] == wanted
    return hit, order[pos[hit]]


def propensity_pairs(window: pl.DataFrame, column: str, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct (client_id, target index) pairs of the window's buys of a target value."""
    lookup = pl.DataFrame({column: targets, "label": np.arange(len(targets), dtype=np.int64)})
    pairs = window.lazy().select("client_id", column).join(lookup.lazy(), on=column).select(
        "client_id", "label").unique().sort("client_id", "label").collect()
    return pairs.get_column("client_id").to_numpy(), pairs.get_column("label").to_numpy()


def buyer_pairs(window: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """The window's distinct buyers, each paired with label 0 (the churn-type label they do not get)."""
    buyers = np.sort(window.get_column("client_id").unique().to_numpy())
    return buyers, np.zeros(len(buyers), dtype=np.int64)


def task_inputs(data_dir: Path, task: str) -> list[Path]:
    """The files a task's labels are built from, beside the two target windows."""
    target = Path(data_dir) / "target"
    if task in PROPENSITY_TASKS:
        return [target / f"{task}.npy", target / f"popularity_{task}.npy"]
    if task == "churn":
        return [target / "active_clients.npy"]
    if task == "conversion":
        return []
    raise UsageError(f"unknown task {task!r}")


def build_task_tables(data_dir: Path, tasks: tuple[str, ...]) -> dict[str, TaskTable]:
    """The label tables of `tasks`, reading each target window once."""
    data_dir = Path(data_dir)
    for task in tasks:
        task_inputs(data_dir, task)  # an unknown task fails before any file is read
    columns = ["client_id", *sorted({propensity_column(t) for t in tasks if t in PROPENSITY_TASKS})]
    windows = {w: read_target_window(target_path(data_dir, w), columns) for w in WINDOWS}
    tables: dict[str, TaskTable] = {}
    for task in tasks:
        if task in PROPENSITY_TASKS:
            targets = load_targets(data_dir / "target" / f"{task}.npy")
            popularity = load_popularity(data_dir / "target" / f"popularity_{task}.npy", len(targets))
            column = propensity_column(task)
            positives = {w: propensity_pairs(windows[w], column, targets) for w in WINDOWS}
            tables[task] = TaskTable(task, len(targets), False, positives, None, popularity)
        else:
            scored = None
            if task == "churn":
                active = _load_npy(data_dir / "target" / "active_clients.npy", "the clients churn is scored on")
                scored = np.unique(active.astype(np.int64))
            positives = {w: buyer_pairs(windows[w]) for w in WINDOWS}
            tables[task] = TaskTable(task, 1, True, positives, scored, None)
    return tables


def build_labels(data_dir: Path, client_ids: np.ndarray, tasks: tuple[str, ...]) -> dict[str, TaskLabels]:
    """Train and validation labels of `tasks` for the entry's clients, in the entry's order."""
    return {task: table.align(client_ids) for task, table in build_task_tables(data_dir, tasks).items()}
