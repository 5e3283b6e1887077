"""Tokenisation: the input window as compact per-event arrays plus per-user offsets.

A user's events are the contiguous slice `offsets[u]:offsets[u + 1]` of every array, in time
order, so a training chunk or an inference window is a pair of integers and a batch is a
gather, never a data-frame lookup. Ids (SKU, category, URL) are hashed here with the fixed
`stable_hash`, two seeds each, into rows 1..hash_rows-1 of the shared "unified embedding"
table (row 0 = missing), so any int64 id works and no vocabulary has to be stored.

An event is stored in 13 bytes: its type, its time and the index of its item row; the item
rows (hashed ids, price, name or query tokens) are stored once per distinct item, and the
calendar and gap features are computed from the times when a batch is gathered. Each shard is
tokenized on the current engine (`ubp.engines`) and appended to memory-mapped `.npy` files, so
the tokens never sit in RAM as a whole and every process that opens the folder shares them.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import shutil
import tempfile
import weakref
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import polars as pl
import torch

from ubp import io as atomic
from ubp.data.window import MANIFEST, InputWindow
from ubp.encoders.shard_tables import TableJob, shard_events, shard_jobs
from ubp.engines import map_shards
from ubp.errors import input_error
from ubp.fingerprint import digest, files_fingerprint
from ubp.hashing import stable_hash
from ubp.layout import US_PER_DAY, US_PER_HOUR, VECTOR_LEN, EventType

ID_FIELDS = ("sku", "category", "url")  # each gets two hash columns in `Tokens.ids`
ITEM_TYPES = (EventType.PRODUCT_BUY, EventType.ADD_TO_CART, EventType.REMOVE_FROM_CART)
FORMAT = 1  # version of the on-disk token layout (part of the folder's key)
_ID_COLS = [f"id{j}" for j in range(2 * len(ID_FIELDS))]
_TEXT_COLS = [f"t{i}" for i in range(VECTOR_LEN)]
_ROW_COLS = [*_ID_COLS, "price", *_TEXT_COLS, "has_tokens"]
_EVENT_ARRAYS = {"event_type": np.uint8, "timestamp": np.int64, "row": np.int32}
_ROW_ARRAYS = {"ids": np.int32, "price": np.int16, "text": np.uint8, "has_text": np.bool_}


class PerEvent:
    """A per-event view of a per-row table: `view[i]` is `table[row[i]]`, gathered on access."""

    def __init__(self, table: np.ndarray, row: np.ndarray) -> None:
        self.table, self.row = table, row

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.row), *self.table.shape[1:])

    def __len__(self) -> int:
        return len(self.row)

    def __getitem__(self, key):
        first, rest = (key[0], key[1:]) if isinstance(key, tuple) else (key, ())
        table = self.table[(slice(None), *rest)] if rest else self.table  # columns first: a narrower gather
        return table[self.row[first]]

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        out = self.table[self.row]
        return out if dtype is None else out.astype(dtype)


@dataclass(frozen=True)
class Tokens:
    """Per-event arrays of all users (N events, U users, R distinct item rows), grouped by user in time order."""

    client_ids: np.ndarray  # int64 (U,)
    offsets: np.ndarray  # int64 (U+1,)
    event_type: np.ndarray  # uint8 (N,)
    timestamp: np.ndarray  # int64 (N,): microseconds since the epoch
    row: np.ndarray  # int32 (N,): the event's item row
    row_ids: np.ndarray  # int32 (R, 6): sku, category, url rows for hash seeds 0 and 1; 0 = missing
    row_price: np.ndarray  # int16 (R,): price bucket + 1; 0 = missing
    row_text: np.ndarray  # uint8 (R, 16): name (items) or query (searches) tokens
    row_has_text: np.ndarray  # bool (R,)
    cutoff: int | None = None  # microseconds since the epoch: the cutoff of the window (None: just after the last event)

    @property
    def now(self) -> int:
        """The moment the window's users are embedded at: its cutoff."""
        if self.cutoff is not None:
            return self.cutoff
        return int(self.timestamp.max(initial=0)) + 1

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    @property
    def n_events(self) -> int:
        return int(self.offsets[-1])

    @property
    def ids(self) -> PerEvent:
        return PerEvent(self.row_ids, self.row)

    @property
    def price(self) -> PerEvent:
        return PerEvent(self.row_price, self.row)

    @property
    def tokens(self) -> PerEvent:
        return PerEvent(self.row_text, self.row)

    @property
    def has_tokens(self) -> PerEvent:
        return PerEvent(self.row_has_text, self.row)

    def time_features(self, index: np.ndarray) -> dict[str, np.ndarray]:
        """weekday (0 = Monday), hour, log1p(hours since the user's previous event; 0 for the first)
        and log1p(days since the user's first event) of the events at `index` (any shape)."""
        ts = self.timestamp[index]
        first = self.offsets[np.searchsorted(self.offsets, index, side="right") - 1]
        gap = np.where(index > first, ts - self.timestamp[np.maximum(index - 1, 0)], 0)
        days, us_of_day = np.divmod(ts, np.int64(US_PER_DAY))
        return {
            "weekday": ((days + 3) % 7).astype(np.uint8),  # 1970-01-01 was a Thursday
            "hour": (us_of_day // np.int64(US_PER_HOUR)).astype(np.uint8),
            "log_gap": np.log1p(gap / US_PER_HOUR).astype(np.float32),
            "log_age": np.log1p((ts - self.timestamp[first]) / US_PER_DAY).astype(np.float32),
        }

    @property
    def nbytes(self) -> int:
        return sum(getattr(self, f).nbytes for f in self.__dataclass_fields__ if f != "cutoff")


@dataclass(frozen=True)
class ShardTokenizer:
    """One shard's events and item rows (what runs on the engine's workers)."""

    hash_rows: int
    price_buckets: int

    def __call__(self, job: TableJob) -> tuple[pl.DataFrame, pl.DataFrame]:
        df = shard_events(job).collect()
        _validate(df, job.shard.path if job.shard is not None else "stream")
        return compact_frame(df, self.hash_rows, self.price_buckets)


def tokenize_frame(df: pl.DataFrame, hash_rows: int, price_buckets: int, source: str = "stream") -> Tokens:
    """Tokens of one collected stream frame (STREAM_SCHEMA columns, any row order), in memory."""
    _validate(df, source)
    events, rows = compact_frame(df, hash_rows, price_buckets)
    cid = events["client_id"].to_numpy()
    starts = np.flatnonzero(np.r_[True, cid[1:] != cid[:-1]]) if len(cid) else np.empty(0, np.int64)
    return Tokens(
        client_ids=cid[starts].astype(np.int64), offsets=np.r_[starts, len(cid)].astype(np.int64),
        event_type=events["event_type"].to_numpy().astype(np.uint8),
        timestamp=events["timestamp"].to_numpy().astype(np.int64), row=events["row"].to_numpy().astype(np.int32),
        row_ids=rows.select(_ID_COLS).to_numpy().astype(np.int32).reshape(-1, len(_ID_COLS)),
        row_price=rows["price"].to_numpy().astype(np.int16),
        row_text=rows.select(_TEXT_COLS).to_numpy().astype(np.uint8).reshape(-1, VECTOR_LEN),
        row_has_text=rows["has_tokens"].to_numpy().astype(bool),
    )


def compact_frame(df: pl.DataFrame, hash_rows: int, price_buckets: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(events: client_id, event_type, timestamp, row; item rows) of one stream frame (any row order)."""
    df = df.sort(["client_id", "timestamp", "event_type"], maintain_order=True)
    ids = {
        _ID_COLS[2 * j + seed]: hash_rows_of(df[f], seed, hash_rows, salt=j)
        for j, f in enumerate(ID_FIELDS) for seed in (0, 1)
    }
    items = pl.DataFrame(ids).hstack(df.select(
        price=(pl.col("price").cast(pl.Int32).clip(0, price_buckets - 1) + 1).fill_null(0).cast(pl.Int16),
        **{t: pl.col("tokens").arr.get(i).fill_null(0) for i, t in enumerate(_TEXT_COLS)},
        has_tokens=pl.col("tokens").arr.get(0).is_not_null(),  # a null array or an array of nulls: no text
    ))
    rows = items.unique(maintain_order=True).with_row_index("row")
    row = items.join(rows, on=_ROW_COLS, how="left", maintain_order="left")["row"]
    events = df.select("client_id", "event_type", pl.col("timestamp").dt.epoch("us")).with_columns(row.cast(pl.Int32))
    return events, rows.drop("row")


def tokenize(
    window: InputWindow,
    hash_rows: int,
    price_buckets: int,
    client_ids: np.ndarray | None = None,
    folder: Path | None = None,
) -> Tokens:
    """Tokens of every user of the window (or only of `client_ids`), shard by shard on the current engine.

    With `folder`, the tokens are kept in `folder/tokens-<key>` (the key covers the bytes of the
    window's manifest and shards, the clients, the options and the layout version) and opened from there
    by any later call or other process; without it they live in a temporary folder removed with them."""
    key = _key(window, hash_rows, price_buckets, client_ids)
    if folder is not None:
        path = Path(folder) / f"tokens-{key}"
        if not (path / "tokens.json").is_file():
            with atomic.atomic_dir(path) as tmp:
                _write(window, hash_rows, price_buckets, client_ids, tmp)
        return open_tokens(path, epoch_us(window.cutoff))
    tmp = Path(tempfile.mkdtemp(prefix="ubp-tokens-"))
    try:
        _write(window, hash_rows, price_buckets, client_ids, tmp)
        tokens = open_tokens(tmp, epoch_us(window.cutoff))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    weakref.finalize(tokens, shutil.rmtree, tmp, True)
    return tokens


def _key(window: InputWindow, hash_rows: int, price_buckets: int, client_ids: np.ndarray | None) -> str:
    names = [MANIFEST, *(posixpath.relpath(s, window.root) for s in window.shards)]
    clients = None if client_ids is None else hashlib.sha1(np.unique(np.asarray(client_ids, np.int64)).tobytes()).hexdigest()
    return digest([files_fingerprint(window.root, names), FORMAT, hash_rows, price_buckets, clients], size=8)


def _write(window: InputWindow, hash_rows: int, price_buckets: int, client_ids: np.ndarray | None, out: Path) -> None:
    """Each shard's arrays appended to one raw file per array, then wrapped as `.npy` headers + data."""
    jobs = shard_jobs(window, None if client_ids is None else np.unique(np.asarray(client_ids, np.int64)))
    names = [*_EVENT_ARRAYS, *_ROW_ARRAYS, "client_ids", "lengths"]
    files = {n: open(out / f"{n}.raw", "wb") for n in names}
    counts = {"events": 0, "rows": 0, "users": 0}
    try:
        for events, rows in map_shards(ShardTokenizer(hash_rows, price_buckets), jobs, near=window.root):
            if not events.height:
                continue
            cid = events["client_id"].to_numpy()
            starts = np.flatnonzero(np.r_[True, cid[1:] != cid[:-1]])
            arrays = {
                "event_type": events["event_type"].to_numpy(), "timestamp": events["timestamp"].to_numpy(),
                "row": events["row"].to_numpy() + counts["rows"],
                "ids": rows.select(_ID_COLS).to_numpy(), "price": rows["price"].to_numpy(),
                "text": rows.select(_TEXT_COLS).to_numpy(), "has_text": rows["has_tokens"].to_numpy(),
                "client_ids": cid[starts], "lengths": np.diff(np.r_[starts, len(cid)]),
            }
            dtypes = {**_EVENT_ARRAYS, **_ROW_ARRAYS, "client_ids": np.int64, "lengths": np.int64}
            for n, a in arrays.items():
                files[n].write(np.ascontiguousarray(a, dtype=dtypes[n]).tobytes())
            counts = {"events": counts["events"] + len(cid), "rows": counts["rows"] + rows.height,
                      "users": counts["users"] + len(starts)}
    finally:
        for f in files.values():
            f.close()
    atomic.write_json(out / "tokens.json", {"format": FORMAT, **counts})


def epoch_us(moment: datetime) -> int:
    """Microseconds since the epoch, converted exactly as the events' timestamps are."""
    return int(pl.Series([moment]).cast(pl.Datetime("us")).dt.epoch("us")[0])


def open_tokens(path: Path, cutoff: int | None = None) -> Tokens:
    """Memory-map a token folder written by `tokenize`; `cutoff` is the window's (see `Tokens.now`)."""
    counts = json.loads((path / "tokens.json").read_text())
    n, r, u = counts["events"], counts["rows"], counts["users"]

    def array(name: str, dtype, shape: tuple[int, ...]) -> np.ndarray:
        if not np.prod(shape):
            return np.zeros(shape, dtype)
        return np.memmap(path / f"{name}.raw", dtype=dtype, mode="r", shape=shape)

    lengths = np.asarray(array("lengths", np.int64, (u,)))
    return Tokens(
        client_ids=np.asarray(array("client_ids", np.int64, (u,))),
        offsets=np.r_[0, np.cumsum(lengths)].astype(np.int64),
        event_type=array("event_type", np.uint8, (n,)),
        timestamp=array("timestamp", np.int64, (n,)),
        row=array("row", np.int32, (n,)),
        row_ids=array("ids", np.int32, (r, 2 * len(ID_FIELDS))),
        row_price=array("price", np.int16, (r,)),
        row_text=array("text", np.uint8, (r, VECTOR_LEN)),
        row_has_text=array("has_text", np.bool_, (r,)),
        cutoff=cutoff,
    )


def hash_rows_of(ids: pl.Series, seed: int, hash_rows: int, salt: int) -> np.ndarray:
    """Row of each id in the shared table for one hash seed; nulls → row 0."""
    values = ids.fill_null(0).to_numpy().astype(np.int64)
    rows = stable_hash(values, salt=1 + 2 * salt + seed) % np.uint64(hash_rows - 1) + np.uint64(1)
    return np.where(ids.is_null().to_numpy(), 0, rows).astype(np.int32)


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


def history_chunks(tokens: Tokens, size: int, whole: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(user, start, end) of the chunks a user is embedded from: the last `size` events, and with
    `whole` every earlier `size` events too, aligned to the end; the last chunk of a user comes
    last among theirs. A user without events has one empty chunk."""
    if not whole:
        end = tokens.offsets[1:]
        return np.arange(len(end)), np.maximum(tokens.offsets[:-1], end - size), end
    n_chunks = np.maximum(-(-tokens.lengths // size), 1)
    user = np.repeat(np.arange(len(n_chunks)), n_chunks)
    back = np.cumsum(n_chunks)[user] - 1 - np.arange(len(user))  # chunks after this one
    end = tokens.offsets[1:][user] - back * size
    return user, np.maximum(tokens.offsets[:-1][user], end - size), end


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


def batch_slots(start: np.ndarray, end: np.ndarray, width: int, with_now: bool,
                now_before_last: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The slots of a batch of chunks start:end (B,) padded to `width`: `real` and `is_now` (B, width),
    each slot's global event index (B, width; 0 for padding and now tokens) and the number of
    events before each row's now token (B,; its length without one). With `with_now` a row is
    its events and a now token after them, or with `now_before_last` before its last event."""
    count = (end - start).astype(np.int64)
    pos = np.arange(width)[None, :]
    real = pos < (count + with_now)[:, None]
    before = np.maximum(count - now_before_last, 0) if with_now else count
    is_now = real & (pos == before[:, None]) if with_now else np.zeros(real.shape, bool)
    index = np.where(real & ~is_now, start[:, None] + pos - (pos > before[:, None]), 0)
    return real, is_now, index, before


def make_batch(
    tokens: Tokens, start: np.ndarray, end: np.ndarray, device: torch.device | str = "cpu", width: int | None = None,
    now: np.ndarray | None = None, now_before_last: bool = False,
) -> dict:
    """Right-padded (B, width) tensors of the events start[b]:end[b]; `length` says how many slots are real.

    With `now` (B,) (microseconds since the epoch), every row also gets a "now" token (`is_now`)
    after its events, or with `now_before_last` before its last event (in training the state
    after it predicts that event), and every event gets `log_until`: log1p(days from it to now).
    The now token carries the time from the event before it to now (`log_gap`), now's weekday,
    hour and log1p(days since the user's first event). `width` defaults to the longest row.
    """
    count = (end - start).astype(np.int64)
    with_now = now is not None
    width = max(int((count + with_now).max(initial=0)), 1) if width is None else width
    real, is_now, index, before = batch_slots(start, end, width, with_now, now_before_last)
    length = count + with_now
    if tokens.n_events == 0:
        index = np.zeros_like(index)
        tokens = _one_dummy_event()
    row = np.where(is_now, 0, tokens.row[index])

    def tensor(a: np.ndarray) -> torch.Tensor:
        return to_device(np.ascontiguousarray(a), device)

    time = tokens.time_features(index)
    batch = {
        "length": to_device(length, device),
        "event_type": tensor(tokens.event_type[index]).long(),
        "ids": tensor(np.where(is_now[..., None], 0, tokens.row_ids[row])).long(),
        "price": tensor(np.where(is_now, 0, tokens.row_price[row])).long(),
        "tokens": tensor(np.where(is_now[..., None], 0, tokens.row_text[row])).long(),
        "has_tokens": tensor(tokens.row_has_text[row] & ~is_now),
    }
    if with_now:
        now_row = now[:, None].astype(np.int64)
        until = np.maximum(now_row - tokens.timestamp[index], 0)
        time["log_until"] = np.where(is_now, 0, np.log1p(until / US_PER_DAY)).astype(np.float32)
        for name, value in now_features(tokens, start, start + before, count > 0, now).items():
            time[name] = np.where(is_now, value[:, None], time[name]).astype(time[name].dtype)
        batch["is_now"] = tensor(is_now)
    return batch | {name: tensor(value).long() if value.dtype == np.uint8 else tensor(value) for name, value in time.items()}


def now_features(tokens: Tokens, start: np.ndarray, after: np.ndarray, has_events: np.ndarray,
                 now: np.ndarray) -> dict[str, np.ndarray]:
    """Calendar and gaps of the now token of rows whose events begin at global event `start` (B,),
    placed before global event `after`: now's weekday and hour, log1p(hours since the user's event
    before it) and log1p(days since the user's first event); 0 where the user has no event before it."""
    days, us_of_day = np.divmod(now.astype(np.int64), np.int64(US_PER_DAY))
    first = tokens.offsets[np.searchsorted(tokens.offsets, start, side="right") - 1]
    seen = has_events & (after > first)

    def since(event: np.ndarray, unit: int) -> np.ndarray:
        return np.where(seen, np.log1p(np.maximum(now - tokens.timestamp[np.where(seen, event, 0)], 0) / unit), 0)

    return {
        "weekday": ((days + 3) % 7).astype(np.uint8),
        "hour": (us_of_day // np.int64(US_PER_HOUR)).astype(np.uint8),
        "log_gap": since(after - 1, US_PER_HOUR).astype(np.float32),
        "log_age": since(first, US_PER_DAY).astype(np.float32),
    }


def to_device(array: np.ndarray | torch.Tensor, device: torch.device | str) -> torch.Tensor:
    """A host array on `device`; to a GPU through pinned memory without waiting (no host synchronisation)."""
    tensor = torch.from_numpy(np.ascontiguousarray(array)) if isinstance(array, np.ndarray) else array
    if torch.device(device).type == "cuda":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)


def _one_dummy_event() -> Tokens:
    """A single all-zero event: gather source when no user has events (every row is padding)."""
    return Tokens(
        client_ids=np.zeros(1, np.int64), offsets=np.array([0, 1], np.int64), event_type=np.zeros(1, np.uint8),
        timestamp=np.zeros(1, np.int64), row=np.zeros(1, np.int32), row_ids=np.zeros((1, 2 * len(ID_FIELDS)), np.int32),
        row_price=np.zeros(1, np.int16), row_text=np.zeros((1, VECTOR_LEN), np.uint8), row_has_text=np.zeros(1, bool),
    )


def item_vocabulary(tokens: Tokens, hash_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Distinct item keys (the SKU's two hash rows as one int64) of item events, with counts.

    Feeds the uniform NIP negatives and the logQ popularity correction.
    """
    keys, _ = _item_keys(tokens, hash_rows)
    return np.unique(keys, return_counts=True)


def url_vocabulary(tokens: Tokens, hash_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Distinct URL keys of page visits with their counts: the popularity of NUP's in-batch negatives."""
    visit = (tokens.event_type == int(EventType.PAGE_VISIT)) & (tokens.ids[:, 4] > 0)
    keys = tokens.ids[visit, 4].astype(np.int64) * hash_rows + tokens.ids[visit, 5]
    return np.unique(keys, return_counts=True)


def item_content(tokens: Tokens, hash_rows: int) -> dict[str, np.ndarray]:
    """Content rows of each `item_vocabulary` key, in its order, as `make_batch` gives them: the
    item row of the key's first event (SKU, category, price bucket, name; no URL)."""
    keys, rows = _item_keys(tokens, hash_rows)
    _, first = np.unique(keys, return_index=True)
    row = rows[first]
    ids = tokens.row_ids[row].copy()
    ids[:, 4:] = 0
    return {"ids": ids, "price": tokens.row_price[row], "tokens": tokens.row_text[row],
            "has_tokens": tokens.row_has_text[row]}


def _item_keys(tokens: Tokens, hash_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """(key, item row) of every item event with a SKU."""
    is_item = np.isin(tokens.event_type, [int(t) for t in ITEM_TYPES]) & (tokens.ids[:, 0] > 0)
    ids = tokens.ids[is_item]
    return ids[:, 0].astype(np.int64) * hash_rows + ids[:, 1], np.asarray(tokens.row)[is_item]
