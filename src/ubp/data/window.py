"""The input window: the only view of the event log an encoder ever receives.

An `InputWindow` reads the folder `DIR/input/window/`: `stream/` (one time-ordered, typed event
stream per user, sharded by a hash of `client_id`), `products.parquet`, `window.json` and the
relevant clients. The folder is built whole and its manifest written last (`ubp.store.rebuilt_dir`:
locally swapped in with one rename, so a reader sees the old window or the new one). Every read filters
`timestamp < cutoff`, so an encoder cannot see an event at or after the train-target start
even if such rows were written there by mistake. DIR may be a local folder or an object-store
URI (`ubp.store`); a `Shard` names one shard's file and the cutoff, all a task on another
machine needs to read it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import polars as pl

from ubp import store
from ubp.errors import UsageError
from ubp.hashing import stable_hash
from ubp.layout import EVENT_TYPES, PRODUCTS_SCHEMA, STREAM_SCHEMA, EventType

WINDOW_DIR = "window"  # under DIR/input, beside the organisers' input files
STREAM_DIR = "stream"
PRODUCTS = "products.parquet"
MANIFEST = "window.json"
RELEVANT = "relevant_clients.npy"
EVENTS_PER_SHARD = 4_000_000


@dataclass(frozen=True)
class Shard:
    """One shard of a window: its file (absolute path or URI) and the cutoff every read applies."""

    path: str
    cutoff: datetime

    def scan(self) -> pl.LazyFrame:
        return store.scan_parquet(self.path).filter(pl.col("timestamp") < self.cutoff)


@dataclass(frozen=True)
class InputWindow:
    """Typed input-window events of one data directory (read-only)."""

    root: str  # DIR/input/window: an absolute local path or a URI (`ubp.store`)
    cutoff: datetime  # train-target start; nothing at or after it is ever returned
    shards: tuple[str, ...]
    event_counts: dict[str, int]
    relevant_clients: np.ndarray

    @classmethod
    def open(cls, data_dir: Path | str) -> "InputWindow":
        root = store.join(store.resolve(data_dir), "input", WINDOW_DIR)
        manifest_path = store.join(root, MANIFEST)
        if not store.is_file(manifest_path):
            raise UsageError(
                f"{manifest_path}: no input window here; run `ubp split --data-dir {data_dir}` first"
            )
        manifest = json.loads(store.read_text(manifest_path))
        shards = tuple(store.join(root, STREAM_DIR, s) for s in manifest["shards"])
        relevant_path = store.join(root, RELEVANT)
        relevant = store.load_npy(relevant_path).astype(np.int64) if store.is_file(relevant_path) else np.empty(0, np.int64)
        return cls(
            root=root,
            cutoff=datetime.fromisoformat(manifest["cutoff"]),
            shards=shards,
            event_counts={k: int(v) for k, v in manifest["event_counts"].items()},
            relevant_clients=relevant,
        )

    @property
    def data_dir(self) -> Path | str:
        """DIR, the data directory this window was split from (a `Path`, or the URI of a store)."""
        folder = store.parent(store.parent(self.root))
        return folder if store.is_uri(folder) else Path(folder)

    @property
    def absent_event_types(self) -> list[str]:
        """Event types with no row in the window (a shop that logs no searches, say)."""
        return [t for t in EVENT_TYPES if self.event_counts.get(t, 0) == 0]

    @property
    def n_events(self) -> int:
        return sum(self.event_counts.values())

    def shard(self, k: int) -> Shard:
        return Shard(self.shards[k], self.cutoff)

    def stream(self, shard: int | None = None) -> pl.LazyFrame:
        """All events (or one shard's), sorted by client then time within each shard."""
        paths = self.shards if shard is None else (self.shards[shard],)
        if not paths:
            return pl.LazyFrame(schema=STREAM_SCHEMA)
        return store.scan_parquet(list(paths)).filter(pl.col("timestamp") < self.cutoff)

    def events(self, kind: str, shard: int | None = None) -> pl.LazyFrame:
        """Events of one type, e.g. `events("product_buy")`."""
        code = EventType[kind.upper()].value
        return self.stream(shard).filter(pl.col("event_type") == code)

    def products(self) -> pl.DataFrame:
        return store.read_parquet(store.join(self.root, PRODUCTS))


def shard_of(client_id: pl.Expr | pl.Series, n_shards: int) -> pl.Expr:
    """Shard number of each client: a fixed hash, so shards do not depend on id ranges."""
    return client_id.map_batches(
        lambda s: pl.Series((stable_hash(s.to_numpy()) % np.uint64(n_shards)).astype(np.int64)),
        return_dtype=pl.Int64,
        is_elementwise=True,
    )


def write_window(
    events: pl.LazyFrame,
    products: pl.DataFrame,
    cutoff: datetime,
    input_dir: Path | str,
    relevant_clients: np.ndarray | None = None,
    events_per_shard: int = EVENTS_PER_SHARD,
) -> InputWindow:
    """Write the typed stream of `events` (STREAM_SCHEMA columns) before `cutoff` to `input_dir/window`
    (a local folder or a store location).

    The whole window is built apart and its manifest written last (`ubp.store.rebuilt_dir`), so a
    killed run never leaves a half window that reads as a whole one.
    """
    input_dir = store.resolve(input_dir)
    events = events.select([pl.col(c).cast(t) for c, t in STREAM_SCHEMA.items()]).filter(
        pl.col("timestamp") < cutoff
    )
    counts_df = events.group_by("event_type").agg(pl.len()).collect()
    counts = {t: 0 for t in EVENT_TYPES}
    for code, n in counts_df.iter_rows():
        counts[EventType(code).file_stem] = int(n)
    n_shards = max(1, -(-sum(counts.values()) // events_per_shard))
    with store.rebuilt_dir(store.join(input_dir, WINDOW_DIR)) as tmp:
        names = _write_shards(events, n_shards, tmp)
        products = products.select([pl.col(c).cast(t) for c, t in PRODUCTS_SCHEMA.items()])
        store.write_parquet(products, store.join(tmp, PRODUCTS))
        if relevant_clients is not None:
            store.save_npy(store.join(tmp, RELEVANT), np.asarray(relevant_clients, dtype=np.int64))
        manifest = {"cutoff": cutoff.isoformat(), "shards": names, "event_counts": counts}
        store.write_bytes(store.join(tmp, MANIFEST), json.dumps(manifest, indent=1).encode())  # last
    return InputWindow.open(store.parent(input_dir))


def _write_shards(events: pl.LazyFrame, n_shards: int, tmp: str) -> list[str]:
    """One streaming pass splits the events by shard, then each shard alone is sorted and written,
    one task per shard on the current engine (`ubp.engines`).

    Memory is bounded by one shard (not the whole log), and the events are read once, not once per shard.
    """
    from ubp.engines import map_shards

    parts = store.join(tmp, "_parts")
    sharded = events.with_columns(shard_of(pl.col("client_id"), n_shards).alias("_shard"))
    sharded.sink_parquet(pl.PartitionBy(parts, key="_shard", include_key=False), mkdir=True,
                         storage_options=store.storage_options(parts))
    files: dict[int, list[str]] = {}
    for name in store.list_files(parts):  # `_shard=K/….parquet`; a shard without events has none
        files.setdefault(int(name.split("/")[0].removeprefix("_shard=")), []).append(store.join(parts, name))
    tasks = [(k, tuple(files.get(k, ()))) for k in range(n_shards)]
    writer = ShardWriter(store.join(tmp, STREAM_DIR))
    names = [table["name"][0] for table in map_shards(writer, tasks, near=tmp)]
    store.delete_dir(parts)
    return names


@dataclass(frozen=True)
class ShardWriter:
    """Sorts and writes one shard from its split-by-shard parts (what a worker receives: a folder
    name, then per task the shard number and its parts' locations)."""

    out: str

    def __call__(self, task: tuple[int, tuple[str, ...]]) -> pl.DataFrame:
        k, parts = task
        name = f"shard-{k:05d}.parquet"
        shard = store.scan_parquet(list(parts)) if parts else pl.LazyFrame(schema=STREAM_SCHEMA)
        store.write_parquet(  # a total order: events tied on (client, time, type) must not depend on the engine's row order
            shard.select(list(STREAM_SCHEMA))
            .sort(["client_id", "timestamp", "event_type", "sku", "url", "tokens"], nulls_last=True)
            .collect(),
            store.join(self.out, name),
        )
        return pl.DataFrame({"name": [name]})

