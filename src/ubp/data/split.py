"""`ubp split`: the organisers' local split (data_utils/split_data.py), then the typed input window.

Same rules and row order as theirs: `end_date` is the last purchase, the train target starts
at midnight 27 days before it, the validation target 14 days later; input files keep every
event before the train-target start in raw order, target files are the purchases of each
window joined with the product properties. On top of that the split derives the target
definition files that are missing (see `ubp.data.targets`) and writes the input window that
encoders read (`ubp.data.window`, built whole, its manifest last). DIR may be a local folder or
an object-store URI (`ubp.store`). The split's stamp (`DIR/input/split_key.json`, written by the
caller) is removed first; the other files are staged (`ubp.store.staged`: locally a temporary
folder, each file renamed into place once all are written; in a store each object written whole),
so a split that did not finish has no stamp and is done again.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl

from ubp import store
from ubp.data.conversions import PrepareOptions, vector_strings
from ubp.data.prepare import RELEVANT, is_current, prepare, read_prepared
from ubp.data.raw import EVENT_COLUMNS, PROPERTY_COLUMNS, open_raw, read_relevant_clients
from ubp.data.targets import Purchases, write_target_files
from ubp.data.window import write_window
from ubp.errors import input_error
from ubp.layout import DAYS_IN_TARGET, EVENT_TYPES, EVENT_VALUE_COLUMN, ITEM_EVENTS, PROPERTIES_FILE, STREAM_SCHEMA, EventType

SPLIT_KEY = "split_key.json"  # under DIR/input: what the split was made from (`ubp.pipeline.split_key`)


@dataclass(frozen=True)
class SplitSummary:
    """Where the windows fell and what was written."""

    data_dir: str
    end_date: datetime
    train_target_start: datetime
    validation_target_start: datetime
    input_rows: dict[str, int]
    target_rows: dict[str, int]
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def absent_event_types(self) -> list[str]:
        return [t for t in EVENT_TYPES if self.input_rows[t] == 0]

    def describe(self) -> str:
        lines = [
            f"split {self.data_dir} in {self.seconds:.1f} s",
            f"  input window      < {self.train_target_start}",
            f"  train target      [{self.train_target_start}, {self.validation_target_start})",
            f"  validation target [{self.validation_target_start}, {self.end_date}]",
        ]
        lines += [f"  input/{t + '.parquet':<24} {n:>12,} rows" for t, n in self.input_rows.items()]
        lines += [f"  target/{t + '.parquet':<23} {n:>12,} rows" for t, n in self.target_rows.items()]
        if self.absent_event_types:
            lines.append(f"  absent event types in the input window (zero rows): {', '.join(self.absent_event_types)}")
        lines += [f"  {n}" for n in self.notes]
        return "\n".join(lines)


def target_starts(end_date: datetime, days: int = DAYS_IN_TARGET) -> tuple[datetime, datetime]:
    """(train_target_start, validation_target_start) exactly as the organisers compute them.

    Like theirs, only hour, minute and second are reset: sub-second digits of `end_date` stay.
    """
    train = (end_date - timedelta(days=2 * days - 1)).replace(hour=0, minute=0, second=0)
    return train, train + timedelta(days=days)


def split(data_dir: Path | str, options: PrepareOptions | None = None) -> SplitSummary:
    """Split DIR into input and target windows (see module docstring); prepares DIR first if needed
    (with `options`; None keeps a current store as it was prepared, or prepares with the defaults)."""
    start = time.perf_counter()
    data_dir = store.resolve(data_dir)
    notes = []
    if not is_current(data_dir, options):
        notes.append("prepared store (re)built first")
        notes += [f"conversion: {c}" for c in prepare(data_dir, options or PrepareOptions()).conversions]
    end_date = read_prepared(data_dir, "product_buy").select(pl.col("timestamp").max()).collect().item()
    if end_date is None:
        raise input_error(store.join(data_dir, "product_buy.parquet"), "no rows: the split places its windows from the last purchase", "timestamp")
    tts, vts = target_starts(end_date)
    relevant = read_relevant_clients(store.join(data_dir, RELEVANT))

    store.delete_file(store.join(data_dir, "input", SPLIT_KEY))
    with store.staged(data_dir) as stage:
        input_rows = _write_input_files(data_dir, store.join(stage, "input"), tts)
        target_rows = _write_target_tables(data_dir, store.join(stage, "target"), tts, vts, end_date)
        buys = _purchases(data_dir, tts, vts)
        buyers = read_prepared(data_dir, "product_buy").filter(pl.col("timestamp") < tts).select("client_id").unique().collect()
        notes += write_target_files(store.join(data_dir, "target"), store.join(stage, "target"), buys, relevant,
                                    buyers["client_id"])
        write_window(typed_stream(data_dir), read_prepared(data_dir, "product_properties").collect(), tts,
                     store.join(data_dir, "input"), relevant)
    notes += _no_history_note(data_dir, tts, relevant)
    return SplitSummary(data_dir, end_date, tts, vts, input_rows, target_rows, notes, time.perf_counter() - start)


def _no_history_note(data_dir: str, tts: datetime, relevant) -> list[str]:
    """A warning when relevant clients have no event at all in the input window."""
    active = pl.concat(
        [read_prepared(data_dir, k).filter(pl.col("timestamp") < tts).select("client_id") for k in EVENT_TYPES]
    ).unique().collect(engine="streaming")["client_id"]
    n = int((~pl.Series(relevant, dtype=pl.Int64).is_in(active.implode())).sum())
    if not n:
        return []
    return [f"warning: {n:,} of {len(relevant):,} relevant clients have no event in the input window; "
            "their profile is each block's empty-history row with no_history = 1"]


def _write_input_files(data_dir: str, out: str, tts: datetime) -> dict[str, int]:
    """input/<event>.parquet: typed ids, timestamp as datetime, rows before `tts` in raw order."""
    rows = {}
    for kind in EVENT_TYPES:
        events = _with_vector_strings(data_dir, read_prepared(data_dir, kind), f"{kind}.parquet", EVENT_VALUE_COLUMN[kind]) \
            if kind == "search_query" else read_prepared(data_dir, kind)
        store.sink_parquet(events.filter(pl.col("timestamp") < tts), store.join(out, f"{kind}.parquet"))
        rows[kind] = store.parquet_rows(store.join(out, f"{kind}.parquet"))
    return rows


def _with_vector_strings(data_dir: str, prepared: pl.LazyFrame, raw_name: str, col: str) -> pl.LazyFrame:
    """The organisers' files keep names and queries as strings: the raw string when the log gave
    vector strings, the challenge's string form of the computed vector when it gave free text."""
    raw = open_raw(store.join(data_dir, raw_name), EVENT_COLUMNS.get(raw_name.removesuffix(".parquet"), PROPERTY_COLUMNS))
    order = prepared.collect_schema().names()
    if col in raw.text:
        return prepared.with_columns(vector_strings(pl.col(col)).alias(col))
    return pl.concat([prepared.drop(col), raw.scan().select(col)], how="horizontal").select(order)


def _write_target_tables(data_dir: str, out: str, tts: datetime, vts: datetime, end_date: datetime) -> dict[str, int]:
    """target/{train,validation}_target.parquet: purchases of each window with the product properties."""
    products = read_prepared(data_dir, "product_properties").with_columns(
        pl.col("category").cast(pl.Int64), pl.col("price").cast(pl.Int64)
    )
    properties = _with_vector_strings(data_dir, products, PROPERTIES_FILE, "name")
    ts = pl.col("timestamp")
    windows = {"train_target": (ts >= tts) & (ts < vts), "validation_target": (ts >= vts) & (ts <= end_date)}
    rows = {}
    for name, in_window in windows.items():
        buys = read_prepared(data_dir, "product_buy").filter(in_window)
        store.sink_parquet(buys.join(properties, on="sku", how="left", maintain_order="left"),
                           store.join(out, f"{name}.parquet"))
        rows[name] = store.parquet_rows(store.join(out, f"{name}.parquet"))
    return rows


def _purchases(data_dir: str, tts: datetime, vts: datetime) -> Purchases:
    products = read_prepared(data_dir, "product_properties").select("sku", "category", "price")
    buys = read_prepared(data_dir, "product_buy").join(products, on="sku", how="left")
    ts = pl.col("timestamp")
    input_skus = pl.concat(
        [read_prepared(data_dir, k).filter(ts < tts).select("sku") for k in ITEM_EVENTS]
    ).unique()
    return Purchases(
        input=buys.filter(ts < tts).collect(),
        train=buys.filter((ts >= tts) & (ts < vts)).collect(),
        input_skus=input_skus.collect()["sku"],
        prices=products.collect()["price"],
    )


def typed_stream(data_dir: Path | str) -> pl.LazyFrame:
    """All five event types as one typed stream (STREAM_SCHEMA); items carry their product fields."""
    products = read_prepared(data_dir, "product_properties").rename({"name": "tokens"})
    parts = []
    for kind in EVENT_TYPES:
        events = read_prepared(data_dir, kind).with_columns(pl.lit(EventType[kind.upper()].value, pl.UInt8).alias("event_type"))
        if kind in ITEM_EVENTS:
            events = events.join(products, on="sku", how="left", maintain_order="left")
        elif kind == "search_query":
            events = events.rename({EVENT_VALUE_COLUMN[kind]: "tokens"})
        present = events.collect_schema().names()
        parts.append(events.select([pl.col(c) if c in present else pl.lit(None, t).alias(c) for c, t in STREAM_SCHEMA.items()]))
    return pl.concat(parts, how="vertical")

