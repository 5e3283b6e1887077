"""Streamed writing of the raw challenge files: string timestamps and "[ 12 0 255 ... ]" vectors."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from ubp.layout import EVENT_TYPES, EVENT_VALUE_COLUMN, PROPERTIES_FILE, VECTOR_LEN
from ubp.synth.params import START

_START_EPOCH = int((START - dt.datetime(1970, 1, 1)).total_seconds())
_VALUE_TYPE = {"sku": pa.int64(), "url": pa.int64(), "query": pa.string()}


def vector_strings(codes: np.ndarray) -> pl.Series:
    """(n, 16) uint8 -> strings like "[ 12 0 255 ... ]", built column-wise by polars."""
    frame = pl.DataFrame({f"v{i}": codes[:, i] for i in range(VECTOR_LEN)}, schema={f"v{i}": pl.UInt8 for i in range(VECTOR_LEN)})
    cols = [pl.col(f"v{i}").cast(pl.String) for i in range(VECTOR_LEN)]
    return frame.select(pl.concat_str([pl.lit("["), *cols, pl.lit("]")], separator=" ").alias("s")).to_series()


def timestamp_strings(seconds: np.ndarray) -> pl.Series:
    """Seconds since day 0 -> "YYYY-MM-DD HH:MM:SS"."""
    return pl.from_epoch(pl.Series("t", seconds + _START_EPOCH, dtype=pl.Int64), time_unit="s").dt.strftime(
        "%Y-%m-%d %H:%M:%S"
    )


def event_schema(event: str) -> pa.Schema:
    column = EVENT_VALUE_COLUMN[event]
    return pa.schema([("client_id", pa.int64()), ("timestamp", pa.string()), (column, _VALUE_TYPE[column])])


class RawWriter:
    """One ParquetWriter per event file, appended chunk by chunk so memory stays bounded.

    Files are created at open, so an event type with no rows still yields a valid empty file.
    """

    def __init__(self, root: Path):
        self._writers = {e: pq.ParquetWriter(root / f"{e}.parquet", event_schema(e)) for e in EVENT_TYPES}
        self.counts = dict.fromkeys(EVENT_TYPES, 0)

    def write(self, event: str, client_id: np.ndarray, seconds: np.ndarray, value: np.ndarray) -> None:
        """Append one chunk of one event type, ordered by time then client id."""
        if len(client_id) == 0:
            return
        order = np.lexsort((client_id, seconds))
        column = EVENT_VALUE_COLUMN[event]
        values = vector_strings(value[order]) if column == "query" else pl.Series(value[order], dtype=pl.Int64)
        frame = pl.DataFrame({"client_id": client_id[order], "timestamp": timestamp_strings(seconds[order]), column: values})
        self._writers[event].write_table(frame.to_arrow().cast(event_schema(event)))
        self.counts[event] += len(frame)

    def close(self) -> None:
        for w in self._writers.values():
            w.close()


def write_properties(path: Path, sku_id: np.ndarray, category: np.ndarray, price: np.ndarray, name: np.ndarray) -> None:
    """product_properties.parquet: sku, category, price bucket, quantized name string."""
    frame = pl.DataFrame(
        {"sku": sku_id, "category": category, "price": price.astype(np.int64), "name": vector_strings(name)}
    )
    schema = pa.schema([("sku", pa.int64()), ("category", pa.int64()), ("price", pa.int64()), ("name", pa.string())])
    pq.write_table(frame.to_arrow().cast(schema), path / PROPERTIES_FILE)
