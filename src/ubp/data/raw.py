"""Reading and validating the raw challenge files (docs/protocol.md §1).

Every raw column is typed lazily with lenient casts (a bad value becomes null), the typed
result is streamed to disk, and only then are its nulls counted: the happy path reads each
file once and never holds a whole event table in memory. When a null shows up, the raw file
is scanned again for the first offending row, which the error names with its file and column.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from ubp.errors import input_error
from ubp.layout import EVENT_TYPES, EVENT_VALUE_COLUMN, PROPERTIES_FILE, VECTOR_LEN

TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S"
TIMESTAMP_CHARS = 19  # fixed width: string order is then time order, as the organisers' max() assumes
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
    """One raw file whose schema has been checked: its path and the typed columns it yields."""

    path: Path
    columns: dict[str, str]  # column -> kind
    schema: pl.Schema

    def scan(self) -> pl.LazyFrame:
        return pl.scan_parquet(self.path)

    def typed(self, keep_vector_strings: bool = False) -> pl.LazyFrame:
        """The contract columns, typed; values that fail to parse become null.

        `keep_vector_strings` leaves name/query as the raw strings (the organisers' input files).
        """
        return self.scan().select(
            [
                pl.col(c) if keep_vector_strings and kind == VECTOR else _typed(c, kind, self.schema[c])
                for c, kind in self.columns.items()
            ]
        )


def open_raw(path: Path, columns: dict[str, str]) -> RawFile:
    """Check that `path` is a readable parquet file with the contract's columns and types."""
    if not path.is_file():
        hint = " (a shop that logs no such events: write the file with its columns and zero rows)" if columns is not PROPERTY_COLUMNS else ""
        raise input_error(path, f"file is missing{hint}")
    if path.stat().st_size == 0:
        raise input_error(path, "file is empty (zero bytes), not a parquet file")
    try:
        schema = pl.read_parquet_schema(path)
    except Exception as e:  # noqa: BLE001 - any reader failure means the same thing to the user
        raise input_error(path, f"cannot be read as parquet ({type(e).__name__}: {str(e).splitlines()[0]})") from e
    for col, kind in columns.items():
        if col not in schema:
            raise input_error(path, f"missing (columns present: {', '.join(schema.names()) or 'none'})", col)
        _check_dtype(path, col, kind, schema[col])
    return RawFile(path, columns, schema)


def _check_dtype(path: Path, col: str, kind: str, dtype: pl.DataType) -> None:
    ok = {
        ID: dtype.is_integer() or dtype.is_float(),  # floats: only to report NaN ids precisely below
        PRICE: dtype.is_integer() or dtype.is_float(),
        TIME: dtype == pl.String or (isinstance(dtype, pl.Datetime) and dtype.time_zone is None),
        VECTOR: dtype == pl.String,
    }[kind]
    if not ok:
        raise input_error(path, f"has dtype {dtype}, expected {_EXPECTED[kind]}", col)
    if dtype.is_float():
        nan = pl.scan_parquet(path).with_row_index(ROW).filter(pl.col(col).is_nan() | pl.col(col).is_null())
        example = nan.head(1).collect()
        if len(example):
            raise input_error(path, "null or NaN id", col, _row_text(example))
        raise input_error(path, f"has dtype {dtype}, expected {_EXPECTED[kind]}", col)


_EXPECTED = {
    ID: "an integer type (int64)",
    PRICE: "an integer type (price bucket)",
    TIME: f"a string '{TIMESTAMP_FORMAT}' or a naive datetime",
    VECTOR: f"a string of {VECTOR_LEN} integers in 0..255 like '[12 0 255 ...]'",
}


def _typed(col: str, kind: str, dtype: pl.DataType) -> pl.Expr:
    c = pl.col(col)
    if kind == ID:
        return c.cast(pl.Int64, strict=False)
    if kind == PRICE:
        return c.cast(pl.Int16, strict=False)
    if kind == TIME:
        if dtype == pl.String:
            parsed = c.str.strptime(pl.Datetime("us"), TIMESTAMP_FORMAT, strict=False)
            return pl.when(c.str.len_bytes() == TIMESTAMP_CHARS).then(parsed).alias(col)
        return c.cast(pl.Datetime("us"))
    return parse_vector(c).alias(col)


def parse_vector(s: pl.Expr) -> pl.Expr:
    """`"[ 12 0 255 ... ]"` → Array(UInt8, 16); null when the string is not exactly 16 values in 0..255."""
    parts = (
        s.str.strip_chars().str.strip_prefix("[").str.strip_suffix("]").str.strip_chars()
        .str.replace_all(r"[\s,]+", " ").str.split(" ")
    )
    nums = parts.list.eval(pl.element().cast(pl.Int64, strict=False))
    valid = (parts.list.len() == VECTOR_LEN) & nums.list.eval(pl.element().is_between(0, 255).fill_null(False)).list.all()
    return pl.when(valid).then(nums.list.eval(pl.element().cast(pl.UInt8)).list.to_array(VECTOR_LEN))


def check_no_nulls(raw: RawFile, typed_path: Path) -> None:
    """Raise on the first raw row whose typed value came out null (bad or missing value)."""
    nulls = pl.scan_parquet(typed_path).select(pl.all().null_count()).collect(engine="streaming").row(0, named=True)
    for col, n in nulls.items():
        if n:
            kind = raw.columns[col]
            bad = raw.scan().with_row_index(ROW).filter(_typed(col, kind, raw.schema[col]).is_null())
            example = bad.head(1).collect()
            raise input_error(raw.path, _problem(kind, example[col][0], raw.schema[col], n), col, _row_text(example))


def _problem(kind: str, value: object, dtype: pl.DataType, n: int) -> str:
    many = f" ({n} rows)" if n > 1 else ""
    if value is None:
        return f"null value{many}"
    if kind in (ID, PRICE):
        return f"value out of range for {'int16' if kind == PRICE else 'int64'}{many}"
    if kind == TIME:
        return f"unparseable timestamp, expected '{TIMESTAMP_FORMAT}'{many}"
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


def check_known_skus(raw: RawFile, typed_path: Path, skus: pl.DataFrame, properties_path: Path) -> None:
    """Every SKU of a buy/add/remove event must exist in product_properties."""
    unknown = (
        pl.scan_parquet(typed_path).select("sku").unique()
        .join(skus.lazy(), on="sku", how="anti").head(1).collect(engine="streaming")
    )
    if len(unknown):
        sku = unknown["sku"][0]
        example = raw.scan().with_row_index(ROW).filter(pl.col("sku") == sku).head(1).collect()
        raise input_error(raw.path, f"SKU {sku} is absent from {properties_path}", "sku", _row_text(example))


def read_relevant_clients(path: Path) -> np.ndarray:
    """`input/relevant_clients.npy`: a 1-D array of unique integer client ids."""
    if not path.is_file():
        raise input_error(path, "file is missing: the clients that must receive a profile")
    try:
        ids = np.load(path, allow_pickle=False)
    except Exception as e:  # noqa: BLE001
        raise input_error(path, f"cannot be read as .npy ({type(e).__name__})") from e
    if ids.ndim != 1 or not np.issubdtype(ids.dtype, np.integer):
        raise input_error(path, f"expected a 1-D integer array, got {ids.dtype} of shape {ids.shape}")
    uniq, counts = np.unique(ids, return_counts=True)
    if (counts > 1).any():
        raise input_error(path, "duplicate client ids", example=int(uniq[counts > 1][0]))
    return ids.astype(np.int64)


def _row_text(frame: pl.DataFrame) -> str:
    """`row 17: client_id=3, timestamp='...'` (0-based row number in the raw file)."""
    row = frame.row(0, named=True)
    idx = row.pop(ROW)
    return f"row {idx}: " + ", ".join(f"{k}={v!r}" for k, v in row.items())

