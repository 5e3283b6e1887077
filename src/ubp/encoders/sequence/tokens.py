"""Tokenisation: the input window as flat per-event arrays plus per-user offsets.

A user's events are the contiguous slice `offsets[u]:offsets[u + 1]` of every array, in time
order, so a training chunk or an inference window is a pair of integers and a batch is a
gather, never a data-frame lookup. Ids (SKU, category, URL) are hashed here with the fixed
`stable_hash`, two seeds each, into rows 1..hash_rows-1 of the shared "unified embedding"
table (row 0 = missing), so any int64 id works and no vocabulary has to be stored.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import polars as pl
import torch

from ubp.data.window import InputWindow
from ubp.errors import input_error
from ubp.hashing import stable_hash
from ubp.layout import US_PER_DAY, US_PER_HOUR, VECTOR_LEN, EventType

ID_FIELDS = ("sku", "category", "url")  # each gets two hash columns in `Tokens.ids`
ITEM_TYPES = (EventType.PRODUCT_BUY, EventType.ADD_TO_CART, EventType.REMOVE_FROM_CART)


@dataclass(frozen=True)
class Tokens:
    """Per-event arrays of all users (N events, U users), grouped by user in time order."""

    client_ids: np.ndarray  # int64 (U,)
    offsets: np.ndarray  # int64 (U+1,)
    event_type: np.ndarray  # uint8 (N,)
    ids: np.ndarray  # int32 (N, 6): sku, category, url rows for hash seeds 0 and 1; 0 = missing
    price: np.ndarray  # int16 (N,): price bucket + 1; 0 = missing
    tokens: np.ndarray  # uint8 (N, 16): name (items) or query (searches) tokens
    has_tokens: np.ndarray  # bool (N,)
    weekday: np.ndarray  # uint8 (N,) 0..6
    hour: np.ndarray  # uint8 (N,) 0..23
    log_gap: np.ndarray  # float32 (N,): log1p(hours since the user's previous event), 0 for the first
    log_age: np.ndarray  # float32 (N,): log1p(days since the user's first event)
    timestamp: np.ndarray  # int64 (N,): microseconds since the epoch (exact time windows, e.g. future labels)

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    @property
    def n_events(self) -> int:
        return int(self.offsets[-1])

    @classmethod
    def concat(cls, parts: list["Tokens"]) -> "Tokens":
        """Join per-shard tokens (shards hold disjoint users, so offsets just shift)."""
        if not parts:
            return cls.empty()
        starts = np.cumsum([0] + [p.n_events for p in parts[:-1]])
        offsets = np.concatenate([[0]] + [p.offsets[1:] + s for p, s in zip(parts, starts)])
        per_event = {
            f.name: np.concatenate([getattr(p, f.name) for p in parts])
            for f in fields(cls)
            if f.name not in ("client_ids", "offsets")
        }
        return cls(
            client_ids=np.concatenate([p.client_ids for p in parts]), offsets=offsets.astype(np.int64), **per_event
        )

    @classmethod
    def empty(cls) -> "Tokens":
        return _arrays_to_tokens(np.empty(0, np.int64), {c: np.empty(0) for c in _EVENT_COLUMNS})


_EVENT_COLUMNS = ("event_type", "price", "weekday", "hour", "log_gap", "log_age", "has_tokens", "timestamp")


def tokenize(
    window: InputWindow,
    hash_rows: int,
    price_buckets: int,
    client_ids: np.ndarray | None = None,
) -> Tokens:
    """Tokens of every user of the window (or only of `client_ids`), shard by shard."""
    parts = []
    for k, path in enumerate(window.shards):
        frame = window.stream(k)
        if client_ids is not None:
            frame = frame.filter(pl.col("client_id").is_in(pl.Series(np.asarray(client_ids, np.int64)).implode()))
        parts.append(tokenize_frame(frame.collect(), hash_rows, price_buckets, source=str(path)))
    return Tokens.concat(parts)


def tokenize_frame(df: pl.DataFrame, hash_rows: int, price_buckets: int, source: str = "stream") -> Tokens:
    """Tokens of one collected stream frame (STREAM_SCHEMA columns, any row order)."""
    _validate(df, source)
    ts = pl.col("timestamp")
    df = df.sort(["client_id", "timestamp", "event_type"], maintain_order=True).with_columns(
        log_gap=(ts.diff().over("client_id").dt.total_microseconds().fill_null(0) / US_PER_HOUR).log1p(),
        log_age=((ts - ts.min().over("client_id")).dt.total_microseconds() / US_PER_DAY).log1p(),
        weekday=ts.dt.weekday() - 1,
        hour=ts.dt.hour(),
        price=(pl.col("price").cast(pl.Int32).clip(0, price_buckets - 1) + 1).fill_null(0),
        has_tokens=pl.col("tokens").arr.get(0).is_not_null(),  # a null array or an array of nulls: no text
        timestamp=ts.dt.epoch("us"),
    )
    columns = {c: df[c].to_numpy() for c in _EVENT_COLUMNS}
    columns["tokens"] = df.select(
        pl.col("tokens").arr.get(i).fill_null(0).alias(f"t{i}") for i in range(VECTOR_LEN)
    ).to_numpy()
    columns["ids"] = np.stack(
        [hash_rows_of(df[f], seed, hash_rows, salt=j) for j, f in enumerate(ID_FIELDS) for seed in (0, 1)], axis=1
    )
    return _arrays_to_tokens(df["client_id"].to_numpy(), columns)


def hash_rows_of(ids: pl.Series, seed: int, hash_rows: int, salt: int) -> np.ndarray:
    """Row of each id in the shared table for one hash seed; nulls → row 0."""
    values = ids.fill_null(0).to_numpy().astype(np.int64)
    rows = stable_hash(values, salt=1 + 2 * salt + seed) % np.uint64(hash_rows - 1) + np.uint64(1)
    return np.where(ids.is_null().to_numpy(), 0, rows).astype(np.int32)


def _arrays_to_tokens(client_of_event: np.ndarray, columns: dict[str, np.ndarray]) -> Tokens:
    n = len(client_of_event)
    starts = np.flatnonzero(np.r_[True, client_of_event[1:] != client_of_event[:-1]]) if n else np.empty(0, np.int64)
    return Tokens(
        client_ids=client_of_event[starts].astype(np.int64),
        offsets=np.r_[starts, n].astype(np.int64),
        event_type=columns["event_type"].astype(np.uint8),
        ids=columns.get("ids", np.zeros((n, 2 * len(ID_FIELDS)))).astype(np.int32),
        price=columns["price"].astype(np.int16),
        tokens=columns.get("tokens", np.zeros((n, VECTOR_LEN))).astype(np.uint8),
        has_tokens=columns["has_tokens"].astype(bool),
        weekday=columns["weekday"].astype(np.uint8),
        hour=columns["hour"].astype(np.uint8),
        log_gap=columns["log_gap"].astype(np.float32),
        log_age=columns["log_age"].astype(np.float32),
        timestamp=columns["timestamp"].astype(np.int64),
    )


def _validate(df: pl.DataFrame, source: str) -> None:
    """Bad rows get an error naming the file, the column and an example row."""
    checks = (
        ("client_id", pl.col("client_id").is_null(), "client_id is missing"),
        ("timestamp", pl.col("timestamp").is_null(), "timestamp is missing"),
        ("event_type", pl.col("event_type").is_null() | (pl.col("event_type") > max(EventType)),
         f"event_type must be 0..{int(max(EventType))}"),
    )
    for column, bad, problem in checks:
        rows = df.filter(bad)
        if len(rows):
            raise input_error(source, problem, column, rows.row(0, named=True))


def training_chunks(tokens: Tokens, max_len: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each history cut into chunks of at most `max_len` events, aligned to its end.

    Aligning to the end makes the last chunk exactly the inference window. Returns
    (start, end, is_first) per chunk; `is_first` marks chunks that begin a user's history.
    """
    lengths = tokens.lengths
    n_chunks = -(-lengths // max_len)
    user = np.repeat(np.arange(len(lengths)), n_chunks)
    back = np.arange(n_chunks.sum()) - np.repeat(np.cumsum(n_chunks) - n_chunks, n_chunks)
    end = tokens.offsets[1:][user] - back * max_len
    start = np.maximum(tokens.offsets[:-1][user], end - max_len)
    return start, end, start == tokens.offsets[:-1][user]


def inference_windows(tokens: Tokens, max_len: int) -> tuple[np.ndarray, np.ndarray]:
    """The last `max_len` events of every user (empty for users without events)."""
    end = tokens.offsets[1:]
    return np.maximum(tokens.offsets[:-1], end - max_len), end


def length_bucketed_batches(lengths: np.ndarray, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Chunk indices grouped by similar length (little padding), in random batch order."""
    order = rng.permutation(len(lengths))
    order = order[np.argsort(lengths[order], kind="stable")]
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def batch_width(length: np.ndarray, multiple: int = 1, limit: int | None = None) -> int:
    """Padded width of a batch: its longest chunk, rounded so that the attention length (the
    width plus the start position) is a multiple of `multiple`, but not past `limit`.

    On a GPU, kernels then see a handful of aligned shapes instead of a new one nearly every
    step; on a CPU `multiple` = 1 wastes no compute on padding.
    """
    width = max(int(length.max(initial=0)), 1)
    rounded = -(-(width + 1) // multiple) * multiple - 1
    return rounded if limit is None else min(rounded, max(width, limit))


def width_multiple(device: torch.device | str) -> int:
    """What padded lengths are rounded to: 64 on a GPU (aligned attention kernels), 1 on a CPU (no waste)."""
    return 64 if torch.device(device).type == "cuda" else 1


def make_batch(
    tokens: Tokens, start: np.ndarray, end: np.ndarray, device: torch.device | str = "cpu", width: int | None = None
) -> dict:
    """Right-padded (B, width) tensors of the events start[b]:end[b]; `length` says how many are real.

    `width` defaults to the longest chunk.
    """
    length = (end - start).astype(np.int64)
    width = max(int(length.max(initial=0)), 1) if width is None else width
    pos = np.arange(width)
    real = pos[None, :] < length[:, None]
    index = np.where(real, start[:, None] + pos[None, :], 0)
    if tokens.n_events == 0:
        index = np.zeros_like(index)
        tokens = _one_dummy_event()

    def take(a: np.ndarray) -> torch.Tensor:
        return to_device(a[index], device)

    return {
        "length": to_device(length, device),
        "event_type": take(tokens.event_type).long(),
        "ids": take(tokens.ids).long(),
        "price": take(tokens.price).long(),
        "tokens": take(tokens.tokens).long(),
        "has_tokens": take(tokens.has_tokens),
        "weekday": take(tokens.weekday).long(),
        "hour": take(tokens.hour).long(),
        "log_gap": take(tokens.log_gap),
        "log_age": take(tokens.log_age),
    }


def to_device(array: np.ndarray | torch.Tensor, device: torch.device | str) -> torch.Tensor:
    """A host array on `device`; to a GPU through pinned memory without waiting (no host synchronisation)."""
    tensor = torch.from_numpy(np.ascontiguousarray(array)) if isinstance(array, np.ndarray) else array
    if torch.device(device).type == "cuda":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)


def _one_dummy_event() -> Tokens:
    """A single all-zero event: gather source when no user has events (every row is padding)."""
    zeros = {c: np.zeros(1) for c in _EVENT_COLUMNS}
    return _arrays_to_tokens(np.zeros(1, np.int64), zeros)


def item_vocabulary(tokens: Tokens, hash_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Distinct item keys (the SKU's two hash rows as one int64) of item events, with counts.

    Feeds the uniform NIP negatives and the logQ popularity correction.
    """
    is_item = np.isin(tokens.event_type, [int(t) for t in ITEM_TYPES]) & (tokens.ids[:, 0] > 0)
    keys = tokens.ids[is_item, 0].astype(np.int64) * hash_rows + tokens.ids[is_item, 1]
    return np.unique(keys, return_counts=True)
