"""Tasks of the user's own: a label file per task, trained and scored like the built-in six.

A task file is a parquet table with `client_id`, `window` ("train" or "validation": the two
future windows the built-in tasks use) and one of:

- `label` (0/1): a binary task like churn. One row per scored client and window; the clients with
  a train row are scored and must have a validation row too. Scored by AUROC.
- `target` (integer ids): a multi-label task like the propensity ones. One row per (client, window,
  target bought); every entry client is scored, a client without rows has no positive. The
  targets are the file's distinct values (at least two) in order of first appearance; a row with a
  null `client_id` declares a target that nobody bought, which still counts in the macro AUROC
  (scoring 0 there, as the built-in tasks count such targets). An optional `popularity` column (one
  value per target) feeds Novelty; without it a target's popularity is its number of train rows.
  Scored by the organisers' blend of AUROC, Novelty and Diversity.

`labels_from_log` writes such a file from purchases, for the windows after a cutoff ("buys in
category C in the 14 days after the cutoff"): so any shop can define its tasks from its own events.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl

from ubp.errors import UsageError, input_error
from ubp.evaluation.labels import WINDOWS, TaskTable
from ubp.io import write_with

KINDS = ("label", "target")


def parse_task_option(option: str) -> tuple[str, Path]:
    """`NAME=FILE.parquet` → (name, path)."""
    name, sep, path = option.partition("=")
    if not sep or not name.strip() or not path.strip():
        raise UsageError(f"--task {option!r}: expected NAME=FILE.parquet")
    return name.strip(), Path(path.strip())


def user_task_paths(options: tuple[str, ...], builtin: tuple[str, ...]) -> dict[str, Path]:
    """The tasks named on the command line; a name may not repeat or shadow a built-in task."""
    tasks: dict[str, Path] = {}
    for option in options:
        name, path = parse_task_option(option)
        if name in tasks or name in builtin:
            raise UsageError(f"--task {option!r}: the task name {name!r} is already taken")
        if not path.is_file():
            raise UsageError(f"--task {option!r}: {path} is not a file")
        tasks[name] = path
    return tasks


def _example(df: pl.DataFrame, mask: pl.Series) -> dict:
    return df.filter(mask).row(0, named=True)


def read_task_file(name: str, path: Path) -> TaskTable:
    """A user task's label table; every problem names the file, the column and an example row."""
    try:
        df = pl.read_parquet(path)
    except Exception as e:  # noqa: BLE001 - any unreadable file becomes one clear line
        raise input_error(path, f"cannot be read as parquet ({type(e).__name__}: {e})") from e
    kinds = [k for k in KINDS if k in df.columns]
    for column in ("client_id", "window"):
        if column not in df.columns:
            raise input_error(path, f"missing; a task file has client_id, window and label or target (has {df.columns})",
                              column=column)
    if len(kinds) != 1:
        raise input_error(path, f"needs exactly one of 'label' (0/1) or 'target' (ids), has {df.columns}")
    if df.is_empty():
        raise input_error(path, "no rows")
    kind = kinds[0]
    for column in ("client_id", kind):
        if df[column].null_count() and (column, kind) != ("client_id", "target"):  # target: declarations
            raise input_error(path, "has nulls", column=column, example=_example(df, df[column].is_null()))
        if not df[column].dtype.is_integer() and df[column].dtype not in (pl.Boolean, pl.Null):
            raise input_error(path, f"must hold integers, not {df[column].dtype}", column=column, example=df.row(0, named=True))
    bad_window = df["client_id"].is_not_null() & ~df["window"].cast(pl.String).is_in(WINDOWS).fill_null(False)
    if bad_window.any():
        raise input_error(path, f"must be one of {WINDOWS}", column="window", example=_example(df, bad_window))
    df = df.with_columns(pl.col("client_id").cast(pl.Int64), pl.col("window").cast(pl.String))
    if kind == "label":
        return _binary_table(name, path, df)
    return _multi_label_table(name, path, df)


def _binary_table(name: str, path: Path, df: pl.DataFrame) -> TaskTable:
    label = df["label"].cast(pl.Int64)
    bad = ~label.is_in([0, 1])
    if bad.any():
        raise input_error(path, "must be 0 or 1", column="label", example=_example(df, bad))
    df = df.with_columns(label.alias("label"))
    repeated = df.select("client_id", "window").is_duplicated()
    if repeated.any():
        raise input_error(path, "a client has more than one row in a window", column="client_id",
                          example=_example(df, repeated))
    train_clients = df.filter(pl.col("window") == "train")["client_id"]
    validation_clients = df.filter(pl.col("window") == "validation")["client_id"]
    lacking = df["window"].eq("train") & ~df["client_id"].is_in(validation_clients.implode())
    if lacking.any():
        raise input_error(path, "a client with a train row has no validation row", column="window",
                          example=_example(df, lacking))
    if train_clients.is_empty():
        raise input_error(path, "no train rows: the train rows choose the clients a binary task scores", column="window")
    positives = {}
    for window in WINDOWS:
        ones = np.sort(df.filter((pl.col("window") == window) & (pl.col("label") == 1))["client_id"].to_numpy())
        positives[window] = (ones, np.zeros(len(ones), dtype=np.int64))
    return TaskTable(name, 1, False, positives, np.unique(train_clients.to_numpy()), None)


def _multi_label_table(name: str, path: Path, df: pl.DataFrame) -> TaskTable:
    df = df.with_columns(pl.col("target").cast(pl.Int64))
    targets = df["target"].unique(maintain_order=True).to_numpy()
    if len(targets) < 2:
        raise input_error(path, f"only {len(targets)} distinct target; a one-target task is binary: use a 'label' column",
                          column="target", example=df.row(0, named=True))
    lookup = pl.DataFrame({"target": targets, "index": np.arange(len(targets), dtype=np.int64)})
    pairs = df.filter(pl.col("client_id").is_not_null()).join(lookup, on="target")
    positives = {}
    for window in WINDOWS:
        w = pairs.filter(pl.col("window") == window).select("client_id", "index").unique().sort("client_id", "index")
        positives[window] = (w["client_id"].to_numpy(), w["index"].to_numpy())
    if "popularity" in df.columns:
        per_target = df.group_by("target").agg(pl.col("popularity").n_unique().alias("n"), pl.col("popularity").first())
        varying = per_target.filter(pl.col("n") > 1)
        if len(varying):
            raise input_error(path, "one target has more than one popularity value", column="popularity",
                              example=_example(df, df["target"] == varying["target"][0]))
        popularity = lookup.join(per_target, on="target").sort("index")["popularity"].cast(pl.Float64).to_numpy()
    else:
        popularity = np.bincount(positives["train"][1], minlength=len(targets)).astype(np.float64)
    if not np.isfinite(popularity).all() or (popularity < 0).any() or popularity.max() <= 0:
        raise input_error(path, "popularity must be finite, non-negative and not all zero", column="popularity")
    return TaskTable(name, len(targets), False, positives, None, popularity)


def labels_from_log(
    buys: pl.DataFrame,
    column: str,
    values: list[int],
    cutoff: datetime,
    days: int,
    clients: np.ndarray | None = None,
) -> pl.DataFrame:
    """A task file's rows from purchases: `column` in `values` during the `days` after `cutoff` (train
    window) and the `days` after that (validation window).

    With `clients` (the clients to score) the task is binary: label 1 when the client bought any of
    the values in the window. Without, it is multi-label over `values`, with each value's popularity
    its number of purchases before the cutoff (the built-in propensity tasks' rule), or, where no
    value was bought before, its train-window count.
    """
    if column not in buys.columns:
        raise UsageError(f"the purchases have no column {column!r} (they have {buys.columns})")
    if not values:
        raise UsageError("give at least one value to predict")
    ts = pl.col("timestamp")
    windows = {"train": (cutoff, cutoff + timedelta(days=days)),
               "validation": (cutoff + timedelta(days=days), cutoff + timedelta(days=2 * days))}
    hits = buys.filter(pl.col(column).is_in(values)).select("client_id", "timestamp", pl.col(column).alias("target"))
    parts = [hits.filter((ts >= lo) & (ts < hi)).select("client_id", pl.lit(w).alias("window"), "target").unique()
             for w, (lo, hi) in windows.items()]
    bought = pl.concat(parts).sort("window", "client_id", "target")
    if clients is not None:
        frames = []
        for w in WINDOWS:
            buyers = bought.filter(pl.col("window") == w)["client_id"].unique().implode()
            frames.append(pl.DataFrame({"client_id": np.asarray(clients, dtype=np.int64)}).select(
                "client_id", pl.lit(w).alias("window"), pl.col("client_id").is_in(buyers).cast(pl.Int8).alias("label")))
        return pl.concat(frames)
    before = buys.filter((ts < cutoff) & pl.col(column).is_in(values)).group_by(column).len()
    counts = dict(zip(before[column].to_list(), before["len"].to_list()))
    if not counts:
        train = bought.filter(pl.col("window") == "train").group_by("target").len()
        counts = dict(zip(train["target"].to_list(), train["len"].to_list()))
    declared = pl.DataFrame({"client_id": [None] * len(values), "window": [None] * len(values), "target": values},
                            schema=bought.schema)  # every value is a target, in the order given, bought or not
    return pl.concat([declared, bought]).with_columns(
        pl.col("target").replace_strict(counts, default=0, return_dtype=pl.Float64).alias("popularity"))


def write_task_file(path: Path, rows: pl.DataFrame) -> None:
    write_with(path, rows.write_parquet)
