"""Conversions that let a real shop's log in: each turns one kind of column into the challenge's type.

A real log rarely comes in the challenge's own types. `prepare` accepts, each conversion
opt-out through `PrepareOptions`:

- timestamps as ISO-8601 strings (`T` separator, fractional seconds, `Z` or `±HH:MM` offsets:
  converted to UTC) and datetime columns of any unit or time zone (converted to UTC, naive);
- float or decimal prices, cut into the challenge's 100 price buckets at the quantiles of the
  catalogue (`price_edges.json` in the prepared store, reusable for a later log);
- string ids, mapped to int64 by a stable hash (the mapping is written beside the store, and two
  strings with one hash are an error);
- free-text product names and search queries, turned into the challenge's 16-integer vectors by
  `text_vectors` (hashed character trigrams, a fixed random projection, quantized).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import polars as pl

from ubp.hashing import stable_hash
from ubp.layout import VECTOR_LEN

N_PRICE_BUCKETS = 100
CHALLENGE_TIMESTAMP = "%Y-%m-%d %H:%M:%S"
# ISO-8601 date-time, `T` or space, optional fraction, optional `Z` / ±HH:MM / ±HHMM offset
ISO_TIMESTAMP = r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:?\d{2})?$"
OFFSET = r"(Z|[+-]\d{2}:?\d{2})$"
TEXT_NGRAM = 3
TEXT_SCALE = 32.0  # quantization step: a projected value z maps to 128 + 32·z, clipped to 0..255
MAX_HASHED_ID = np.uint64(0x7FFF_FFFF_FFFF_FFFF)


@dataclass(frozen=True)
class PrepareOptions:
    """Which conversions `prepare` may apply; switching one off makes that input an error again."""

    iso_timestamps: bool = True  # ISO-8601 strings and time-zone-aware datetimes → UTC
    price_quantiles: bool = True  # float / decimal prices → 100 catalogue-quantile buckets
    hash_string_ids: bool = True  # string ids → int64 by a stable hash
    text_vectors: bool = True  # free-text names / queries → 16-integer vectors
    price_edges: Path | None = None  # reuse these bucket edges (an earlier store's price_edges.json)

    def describe(self) -> list[str]:
        """`name: on|off` for each switch, in field order."""
        return [f"{f.name}: {'on' if getattr(self, f.name) else 'off'}" for f in fields(self) if f.type in (bool, "bool")]


# ----- timestamps -------------------------------------------------------------------------------

def parse_timestamps(c: pl.Expr, dtype: pl.DataType, iso: bool) -> pl.Expr:
    """A timestamp column as naive UTC Datetime("us"); null where a string does not parse.

    Without `iso`, only the challenge's fixed-width `YYYY-MM-DD HH:MM:SS` strings and naive
    datetimes are read (any other value is null, then an error naming the row)."""
    if isinstance(dtype, pl.Datetime):
        if dtype.time_zone is not None:
            c = c.dt.convert_time_zone("UTC").dt.replace_time_zone(None) if iso else pl.lit(None, pl.Datetime("us"))
        return c.cast(pl.Datetime("us"))
    if not iso:
        parsed = c.str.strptime(pl.Datetime("us"), CHALLENGE_TIMESTAMP, strict=False)
        return pl.when(c.str.len_bytes() == 19).then(parsed)
    text = c.str.strip_chars().str.replace("T", " ", literal=True).str.replace(r"Z$", "+00:00")
    naive = text.str.strptime(pl.Datetime("us"), "%Y-%m-%d %H:%M:%S%.f", strict=False)
    aware = (
        text.str.strptime(pl.Datetime("us", "UTC"), "%Y-%m-%d %H:%M:%S%.f%z", strict=False)
        .dt.replace_time_zone(None)
    )
    return pl.when(c.str.strip_chars().str.contains(ISO_TIMESTAMP)).then(pl.coalesce(naive, aware))


def timestamp_report(lf: pl.LazyFrame, col: str, dtype: pl.DataType) -> dict[str, int]:
    """Rows of a timestamp column that needed a conversion: ISO forms, UTC offsets, time zones."""
    c = pl.col(col)
    if isinstance(dtype, pl.Datetime):
        return {"time_zone_converted": 0 if dtype.time_zone is None else lf.select(c.count()).collect().item()}
    counts = lf.select(
        c.str.contains("T", literal=True).sum().alias("iso_t"),
        c.str.contains(r":\d{2}\.\d").sum().alias("fractional"),
        c.str.strip_chars().str.contains(OFFSET).sum().alias("offset_converted"),
    ).collect(engine="streaming")
    return {k: int(v or 0) for k, v in counts.row(0, named=True).items()}


# ----- prices -----------------------------------------------------------------------------------

def price_edges(prices: np.ndarray) -> np.ndarray:
    """The 99 inner edges of the 100 catalogue-quantile buckets (one value per product)."""
    prices = np.asarray(prices, dtype=np.float64)
    return np.quantile(prices, np.arange(1, N_PRICE_BUCKETS) / N_PRICE_BUCKETS)


def price_buckets(c: pl.Expr, edges: np.ndarray) -> pl.Expr:
    """Bucket 0..99 of each price: the number of edges at or below it."""
    def cut(s: pl.Series) -> pl.Series:
        values = s.cast(pl.Float64).to_numpy()
        buckets = np.searchsorted(edges, values, side="right").astype(np.int16)
        return pl.Series(s.name, buckets, dtype=pl.Int16).scatter(np.flatnonzero(np.isnan(values)), None)

    return c.map_batches(cut, return_dtype=pl.Int16, is_elementwise=True)


# ----- string ids -------------------------------------------------------------------------------

def hash_strings(values: np.ndarray) -> np.ndarray:
    """Stable non-negative int64 of each string: the first 8 bytes of its BLAKE2b digest, top bit cleared."""
    out = np.empty(len(values), dtype=np.uint64)
    for i, v in enumerate(values):
        out[i] = int.from_bytes(hashlib.blake2b(str(v).encode(), digest_size=8).digest(), "little")
    return (out & MAX_HASHED_ID).astype(np.int64)


def hashed_ids(c: pl.Expr) -> pl.Expr:
    """`hash_strings` of a string column (each distinct value hashed once per batch)."""
    def apply(s: pl.Series) -> pl.Series:
        uniq = s.drop_nulls().unique()
        ids = pl.Series(hash_strings(uniq.to_numpy()), dtype=pl.Int64)
        return s.replace_strict(uniq, ids, default=None, return_dtype=pl.Int64)

    return c.map_batches(apply, return_dtype=pl.Int64, is_elementwise=True)


# ----- text -------------------------------------------------------------------------------------

def text_vectors(texts: np.ndarray | list[str]) -> np.ndarray:
    """Free text → (n, 16) uint8, deterministic and independent of the rest of the log.

    The text is lower-cased with runs of whitespace made one space and padded with a space on
    each side; every UTF-8 byte trigram is hashed (splitmix64 of its three bytes); bit d of the
    hash gives the trigram a sign ±1 in dimension d (a fixed random ±1 projection of the trigram
    counts); the 16 sums are divided by √(number of trigrams), so each is about N(0, 1), and
    quantized as 128 + 32·z, rounded and clipped to 0..255. Similar strings share trigrams and
    so get near vectors, which is what blocks that compare names or queries rely on.
    """
    normed = [" " + " ".join(str(t).lower().split()) + " " for t in texts]
    encoded = [t.encode() for t in normed]
    lengths = np.array([len(b) for b in encoded], dtype=np.int64)
    flat = np.frombuffer(b"".join(encoded), dtype=np.uint8).astype(np.uint64)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    n_grams = np.maximum(lengths - TEXT_NGRAM + 1, 0)
    owner = np.repeat(np.arange(len(encoded)), n_grams)
    pos = np.repeat(starts, n_grams) + (np.arange(n_grams.sum()) - np.repeat(np.cumsum(n_grams) - n_grams, n_grams))
    codes = (flat[pos] << np.uint64(16)) | (flat[pos + 1] << np.uint64(8)) | flat[pos + 2]
    h = stable_hash(codes, salt=TEXT_NGRAM)
    z = np.zeros((len(encoded), VECTOR_LEN), dtype=np.float64)
    for d in range(VECTOR_LEN):
        sign = ((h >> np.uint64(d)) & np.uint64(1)).astype(np.float64) * 2.0 - 1.0
        z[:, d] = np.bincount(owner, weights=sign, minlength=len(encoded))
    z /= np.sqrt(np.maximum(n_grams, 1))[:, None]
    return np.clip(np.rint(128.0 + TEXT_SCALE * z), 0, 255).astype(np.uint8)


def text_column(c: pl.Expr) -> pl.Expr:
    """`text_vectors` of a string column as Array(UInt8, 16) (each distinct text embedded once per batch)."""
    def apply(s: pl.Series) -> pl.Series:
        uniq = s.drop_nulls().unique()
        vectors = pl.Series(text_vectors(uniq.to_list()), dtype=pl.Array(pl.UInt8, VECTOR_LEN))
        index = s.replace_strict(uniq, pl.Series(np.arange(len(uniq))), default=None, return_dtype=pl.Int64)
        return vectors.gather(index).alias(s.name)

    return c.map_batches(apply, return_dtype=pl.Array(pl.UInt8, VECTOR_LEN), is_elementwise=True)


def vector_strings(c: pl.Expr) -> pl.Expr:
    """Array(UInt8, 16) → the challenge's string form `[a b c ...]`."""
    return pl.concat_str(pl.lit("["), c.cast(pl.List(pl.String)).list.join(" "), pl.lit("]"))
