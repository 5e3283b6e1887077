"""`ubp prepare`: validate the raw files once and write the typed store DIR/prepared/.

Timestamps become datetimes and vector strings 16 uint8 tokens here, at the door, so no later
stage parses a string again. The store is built in DIR/prepared.tmp and renamed into place:
a failed or killed run leaves no partial output.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq

from ubp.data.raw import EVENT_COLUMNS, PROPERTY_COLUMNS, check_known_skus, check_no_nulls, check_unique, open_raw, read_relevant_clients
from ubp.errors import input_error
from ubp.fingerprint import code_version, files_fingerprint
from ubp.io import swap_dir
from ubp.layout import EVENT_TYPES, ITEM_EVENTS, PROPERTIES_FILE

PREPARED = "prepared"
MANIFEST = "manifest.json"
RELEVANT = Path("input") / "relevant_clients.npy"


@dataclass(frozen=True)
class PrepareSummary:
    """What `prepare` wrote: rows per event type and products."""

    out: Path
    rows: dict[str, int]
    n_products: int
    seconds: float

    @property
    def absent_event_types(self) -> list[str]:
        return [t for t in EVENT_TYPES if self.rows[t] == 0]

    def describe(self) -> str:
        lines = [f"prepared {self.out} in {self.seconds:.1f} s"]
        lines += [f"  {t:<17} {n:>12,} rows" for t, n in self.rows.items()]
        lines.append(f"  {'products':<17} {self.n_products:>12,} rows")
        if self.absent_event_types:
            lines.append(f"  absent event types (zero rows): {', '.join(self.absent_event_types)}")
        return "\n".join(lines)


def prepared_dir(data_dir: Path | str) -> Path:
    return Path(data_dir) / PREPARED


def prepare(data_dir: Path | str) -> PrepareSummary:
    """Validate DIR's raw files and write DIR/prepared/ (see module docstring)."""
    start = time.perf_counter()
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise input_error(data_dir, "no such data directory")
    properties = open_raw(data_dir / PROPERTIES_FILE, PROPERTY_COLUMNS)
    events = {t: open_raw(data_dir / f"{t}.parquet", cols) for t, cols in EVENT_COLUMNS.items()}
    read_relevant_clients(data_dir / RELEVANT)

    out = prepared_dir(data_dir)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        products_path = tmp / PROPERTIES_FILE
        products = properties.typed().collect()
        products.write_parquet(products_path)
        check_no_nulls(properties, products_path)
        check_unique(properties, products, "sku")
        skus = products.select("sku")
        rows = {}
        for kind, raw in events.items():
            path = tmp / f"{kind}.parquet"
            raw.typed().sink_parquet(path)
            check_no_nulls(raw, path)
            if kind in ITEM_EVENTS:
                check_known_skus(raw, path, skus, properties.path)
            rows[kind] = pq.read_metadata(path).num_rows
        manifest = {"raw": raw_fingerprint(data_dir), "rows": rows, "products": len(products)}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1))
        swap_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return PrepareSummary(out, rows, len(products), time.perf_counter() - start)


def raw_fingerprint(data_dir: Path) -> dict[str, str | None]:
    """Content digest of each raw table and the code version of this stage: a changed table or
    changed code makes the store stale; a moved folder does not."""
    names = [PROPERTIES_FILE, *(f"{t}.parquet" for t in EVENT_TYPES)]
    return {**files_fingerprint(data_dir, names), "code": code_version(__name__)}


def is_current(data_dir: Path | str) -> bool:
    """Whether DIR/prepared/ exists and was built from the raw files as they are now."""
    data_dir = Path(data_dir)
    manifest = prepared_dir(data_dir) / MANIFEST
    if not manifest.is_file():
        return False
    try:
        return json.loads(manifest.read_text())["raw"] == raw_fingerprint(data_dir)
    except FileNotFoundError:
        return False


def read_prepared(data_dir: Path | str, name: str) -> pl.LazyFrame:
    """A prepared table by event type (or `product_properties`)."""
    return pl.scan_parquet(prepared_dir(data_dir) / f"{name}.parquet")

