"""Reading and validating the raw challenge files (docs/protocol.md §1), and real logs beside them.

Every raw column is typed lazily with lenient casts (a bad value becomes null), the typed
result is streamed to disk, and only then are its nulls counted: the happy path reads each
file once and never holds a whole event table in memory. When a null shows up, the raw file
is scanned again for the first offending row, which the error names with its file and column.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from ubp import store
from ubp.data.conversions import (
    CHALLENGE_TIMESTAMP, N_PRICE_BUCKETS, PrepareOptions, hash_strings, hashed_ids, parse_timestamps, price_buckets,
    text_column,
)
from ubp.errors import input_error
from ubp.layout import EVENT_TYPES, EVENT_VALUE_COLUMN, PROPERTIES_FILE, VECTOR_LEN

ROW = "_row"

# Kind of each raw column: how it is typed and checked.
ID, TIME, VECTOR, PRICE = "id", "timestamp", "vector", "price"
EVENT_COLUMNS: dict[str, dict[str, str]] = {
    t: {"client_id": ID, "timestamp": TIME, EVENT_VALUE_COLUMN[t]: VECTOR if t == "search_query" else ID}
    for t in EVENT_TYPES
}
PROPERTY_COLUMNS: dict[str, str] = {"sku": ID, "category": ID, "price": PRICE, "name": VECTOR}
RAW_FILES: dict[str, dict[str, str]] = {f"{t}.parquet": cols for t, cols in EVENT_COLUMNS.items()} | {
    PROPERTIES_FILE: PROPERTY_COLUMNS
}


@dataclass(frozen=True)
class RawFile:
    """One raw file whose schema has been checked: its path, the typed columns it yields and how."""

    path: str  # an absolute local path or an object-store URI (`ubp.store`)
    columns: dict[str, str]  # column -> kind
    schema: pl.Schema
    options: PrepareOptions = PrepareOptions()
    text: frozenset[str] = frozenset()  # vector columns holding free text, not vector strings
    edges: np.ndarray | None = field(default=None, compare=False)  # price-bucket edges for float prices

    def scan(self) -> pl.LazyFrame:
        return store.scan_parquet(self.path)

    def typed(self) -> pl.LazyFrame:
        """The contract columns, typed; values that fail to parse become null."""
        return self.scan().select([self.typed_column(c) for c in self.columns])

    def typed_column(self, col: str) -> pl.Expr:
        return _typed(col, self.columns[col], self.schema[col], self.options, col in self.text, self.edges).alias(col)

    def conversions(self) -> dict[str, str]:
        """Column → the conversion it goes through (columns already in the challenge's type are absent)."""
        out = {}
        for col, kind in self.columns.items():
            dtype = self.schema[col]
            if kind == ID and dtype == pl.String:
                out[col] = "string ids hashed to int64"
            elif kind == PRICE and not dtype.is_integer():
                out[col] = f"{dtype} prices cut into {N_PRICE_BUCKETS} catalogue-quantile buckets"
            elif kind == VECTOR and col in self.text:
                out[col] = f"free text embedded as {VECTOR_LEN}-integer vectors"
            elif kind == TIME and isinstance(dtype, pl.Datetime) and (dtype.time_zone or dtype.time_unit != "us"):
                out[col] = f"{dtype} converted to naive UTC datetime[us]"
        return out

    def with_edges(self, edges: np.ndarray) -> "RawFile":
        return RawFile(self.path, self.columns, self.schema, self.options, self.text, edges)


def open_raw(path: Path | str, columns: dict[str, str], options: PrepareOptions = PrepareOptions()) -> RawFile:
    """Check that `path` (local or in a store) is a readable parquet file with the contract's columns and types."""
    path = store.resolve(path)
    if not store.is_file(path):
        hint = " (a shop that logs no such events: write the file with its columns and zero rows)" if columns is not PROPERTY_COLUMNS else ""
        raise input_error(path, f"file is missing{hint}")
    if store.size(path) == 0:
        raise input_error(path, "file is empty (zero bytes), not a parquet file")
    try:
        schema = store.scan_parquet(path).collect_schema()
    except Exception as e:  # noqa: BLE001 - any reader failure means the same thing to the user
        raise input_error(path, f"cannot be read as parquet ({type(e).__name__}: {str(e).splitlines()[0]})") from e
    for col, kind in columns.items():
        if col not in schema:
            raise input_error(path, f"missing (columns present: {', '.join(schema.names()) or 'none'})", col)
        _check_dtype(path, col, kind, schema[col], options)
    text = frozenset(c for c, k in columns.items() if k == VECTOR and options.text_vectors and _is_free_text(path, c))
    return RawFile(path, columns, schema, options, text)


def _is_free_text(path: str, col: str) -> bool:
    """A vector column holds free text when its first value does not look like `[n n ...]`."""
    first = store.scan_parquet(path).select(pl.col(col).drop_nulls().first()).collect().item()
    return first is not None and not str(first).lstrip().startswith("[")


def _check_dtype(path: str, col: str, kind: str, dtype: pl.DataType, options: PrepareOptions) -> None:
    ok = {
        ID: dtype.is_integer() or dtype.is_float() or (dtype == pl.String and options.hash_string_ids),  # floats: only to report NaN ids precisely below
        PRICE: dtype.is_integer() or ((dtype.is_float() or dtype.is_decimal()) and options.price_quantiles),
        TIME: dtype == pl.String or (isinstance(dtype, pl.Datetime) and (dtype.time_zone is None or options.iso_timestamps)),
        VECTOR: dtype == pl.String,
    }[kind]
    if not ok:
        raise input_error(path, f"has dtype {dtype}, expected {_expected(kind, options)}{_opted_out(kind, dtype, options)}", col)
    if kind == ID and dtype.is_float():
        nan = store.scan_parquet(path).with_row_index(ROW).filter(pl.col(col).is_nan() | pl.col(col).is_null())
        example = nan.head(1).collect()
        if len(example):
            raise input_error(path, "null or NaN id", col, _row_text(example))
        raise input_error(path, f"has dtype {dtype}, expected {_expected(kind, options)}", col)


def _expected(kind: str, options: PrepareOptions) -> str:
    return {
        ID: "an integer type (int64)" + (" or strings (hashed to int64)" if options.hash_string_ids else ""),
        PRICE: f"an integer price bucket 0..{N_PRICE_BUCKETS - 1}" + (" or float / decimal prices (bucketed)" if options.price_quantiles else ""),
        TIME: (f"a string '{CHALLENGE_TIMESTAMP}'" + (", an ISO-8601 string" if options.iso_timestamps else "")
               + " or a naive datetime" + (" or a time-zone-aware one" if options.iso_timestamps else "")),
        VECTOR: f"a string of {VECTOR_LEN} integers in 0..255 like '[12 0 255 ...]'" + (" or free text" if options.text_vectors else ""),
    }[kind]


def _opted_out(kind: str, dtype: pl.DataType, options: PrepareOptions) -> str:
    """The hint when a conversion that would read this column is switched off."""
    switch = {
        ID: "hash_string_ids" if dtype == pl.String and not options.hash_string_ids else None,
        PRICE: "price_quantiles" if (dtype.is_float() or dtype.is_decimal()) and not options.price_quantiles else None,
        TIME: "iso_timestamps" if isinstance(dtype, pl.Datetime) and not options.iso_timestamps else None,
        VECTOR: None,
    }[kind]
    return f" (the {switch} conversion is switched off)" if switch else ""


def _typed(col: str, kind: str, dtype: pl.DataType, options: PrepareOptions, text: bool, edges: np.ndarray | None) -> pl.Expr:
    c = pl.col(col)
    if kind == ID:
        return hashed_ids(c) if dtype == pl.String else c.cast(pl.Int64, strict=False)
    if kind == PRICE:
        if dtype.is_integer():
            return pl.when(c.is_between(0, N_PRICE_BUCKETS - 1)).then(c.cast(pl.Int16, strict=False))
        if edges is None:
            raise AssertionError("float prices are typed only once the catalogue's edges are known")
        return price_buckets(c, edges)
    if kind == TIME:
        return parse_timestamps(c, dtype, options.iso_timestamps)
    return text_column(c) if text else parse_vector(c)


def parse_vector(s: pl.Expr) -> pl.Expr:
    """`"[ 12 0 255 ... ]"` → Array(UInt8, 16); null when the string is not exactly 16 values in 0..255."""
    parts = (
        s.str.strip_chars().str.strip_prefix("[").str.strip_suffix("]").str.strip_chars()
        .str.replace_all(r"[\s,]+", " ").str.split(" ")
    )
    nums = parts.list.eval(pl.element().cast(pl.Int64, strict=False))
    valid = (parts.list.len() == VECTOR_LEN) & nums.list.eval(pl.element().is_between(0, 255).fill_null(False)).list.all()
    return pl.when(valid).then(nums.list.eval(pl.element().cast(pl.UInt8)).list.to_array(VECTOR_LEN))


def check_no_nulls(raw: RawFile, typed_path: str) -> None:
    """Raise on the first raw row whose typed value came out null (bad or missing value)."""
    nulls = store.scan_parquet(typed_path).select(pl.all().null_count()).collect(engine="streaming").row(0, named=True)
    for col, n in nulls.items():
        if n:
            kind = raw.columns[col]
            bad = raw.scan().with_row_index(ROW).filter(raw.typed_column(col).is_null())
            example = bad.head(1).collect()
            raise input_error(raw.path, _problem(kind, example[col][0], raw.options, n), col, _row_text(example))


def _problem(kind: str, value: object, options: PrepareOptions, n: int) -> str:
    many = f" ({n} rows)" if n > 1 else ""
    if value is None or value != value:
        return f"null value{many}"
    if kind == PRICE:
        hint = "; prices in money units: write them as floats or decimals to have them bucketed" if options.price_quantiles else ""
        return f"integer price {value} is not a challenge price bucket 0..{N_PRICE_BUCKETS - 1}{many}{hint}"
    if kind == ID:
        return f"value out of range for int64{many}"
    if kind == TIME:
        accepted = "ISO-8601 (e.g. '2022-06-01T04:17:43.250+02:00') or " if options.iso_timestamps else ""
        return f"unparseable timestamp, expected {accepted}'{CHALLENGE_TIMESTAMP}'{many}"
    return f"malformed vector string: {vector_problem(str(value))}{many}"


def vector_problem(text: str) -> str:
    """Why one vector string fails to parse (only called on the error path, one row)."""
    items = [t for t in text.strip().removeprefix("[").removesuffix("]").replace(",", " ").split()]
    garbage = [t for t in items if not t.isdigit()]
    if garbage:
        return f"non-integer item {garbage[0]!r}"
    if len(items) != VECTOR_LEN:
        return f"{len(items)} values, expected {VECTOR_LEN}"
    return f"value {max(int(t) for t in items)} outside 0..255"


def check_unique(raw: RawFile, frame: pl.DataFrame, col: str) -> None:
    """Product ids must be unique: the organisers join with validate='m:1'."""
    dup = frame.with_row_index(ROW).filter(pl.col(col).is_duplicated())
    if len(dup):
        raise input_error(raw.path, f"duplicate values ({dup[col].n_unique()} ids appear more than once)", col, _row_text(dup.head(1)))


def check_known_skus(raw: RawFile, typed_path: str, skus: pl.DataFrame, properties_path: str) -> None:
    """Every SKU of a buy/add/remove event must exist in product_properties."""
    unknown = (
        store.scan_parquet(typed_path).select("sku").unique()
        .join(skus.lazy(), on="sku", how="anti").head(1).collect(engine="streaming")
    )
    if len(unknown):
        sku = unknown["sku"][0]
        example = raw.scan().with_row_index(ROW).filter(pl.col("sku") == sku).head(1).collect()
        raise input_error(raw.path, f"SKU {sku} is absent from {properties_path}", "sku", _row_text(example))


def read_relevant_clients(path: Path | str) -> np.ndarray:
    """`input/relevant_clients.npy`: a 1-D array of unique client ids, as int64.

    Integer ids are taken as they are; strings are hashed exactly as string `client_id` columns
    are (`ubp.data.conversions.hash_strings`), so the file can list a log's own ids."""
    if not store.is_file(path):
        raise input_error(path, "file is missing: the clients that must receive a profile")
    try:
        ids = store.load_npy(path)
    except Exception as e:  # noqa: BLE001
        hint = "; string ids must be saved as a unicode array, e.g. np.array(ids, dtype=str)" if "pickle" in str(e) else ""
        raise input_error(path, f"cannot be read as .npy ({type(e).__name__}{hint})") from e
    if ids.ndim != 1 or not (np.issubdtype(ids.dtype, np.integer) or ids.dtype.kind == "U"):
        raise input_error(path, f"expected a 1-D array of integer or string ids, got {ids.dtype} of shape {ids.shape}")
    uniq, counts = np.unique(ids, return_counts=True)
    if (counts > 1).any():
        dup = uniq[counts > 1][0]
        raise input_error(path, "duplicate client ids", example=dup.item() if ids.dtype.kind != "U" else str(dup))
    return hash_strings(ids) if ids.dtype.kind == "U" else ids.astype(np.int64)


def relevant_clients_are_strings(path: str) -> bool:
    return store.is_file(path) and store.load_npy(path).dtype.kind == "U"


def _row_text(frame: pl.DataFrame) -> str:
    """`row 17: client_id=3, timestamp='...'` (0-based row number in the raw file)."""
    row = frame.row(0, named=True)
    idx = row.pop(ROW)
    return f"row {idx}: " + ", ".join(f"{k}={v!r}" for k, v in row.items())

