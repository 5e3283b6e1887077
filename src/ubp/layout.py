"""The RecSys Challenge 2025 data contract: file names, columns, event types and tasks.

Everything that names a file or a column of the challenge layout lives here, so that the
rest of the package never spells a path twice.
"""

from __future__ import annotations

from enum import IntEnum

import polars as pl

DAYS_IN_TARGET = 14
US_PER_HOUR = 3_600_000_000  # stream timestamps are Datetime("us")
US_PER_DAY = 24 * US_PER_HOUR
VECTOR_LEN = 16  # quantized name / query embeddings: 16 integers in 0..255


class EventType(IntEnum):
    """Event types in the order the organisers list them (also the stream's `event_type` code)."""

    PRODUCT_BUY = 0
    ADD_TO_CART = 1
    REMOVE_FROM_CART = 2
    PAGE_VISIT = 3
    SEARCH_QUERY = 4

    @property
    def file_stem(self) -> str:
        return self.name.lower()


EVENT_TYPES: tuple[str, ...] = tuple(e.file_stem for e in EventType)
ITEM_EVENTS: tuple[str, ...] = ("product_buy", "add_to_cart", "remove_from_cart")
ITEM_CODES: tuple[int, ...] = tuple(EventType[t.upper()].value for t in ITEM_EVENTS)  # stream `event_type` codes
# Short names of the event types in feature column names (n_buy_7d, days_since_visit, ...).
SHORT_NAMES: dict[str, str] = {
    "product_buy": "buy", "add_to_cart": "cart", "remove_from_cart": "remove", "page_visit": "visit", "search_query": "search",
}
PROPERTIES_FILE = "product_properties.parquet"

# Column of each event type beside client_id and timestamp.
EVENT_VALUE_COLUMN: dict[str, str] = {
    "product_buy": "sku",
    "add_to_cart": "sku",
    "remove_from_cart": "sku",
    "page_visit": "url",
    "search_query": "query",
}

TOKENS = pl.Array(pl.UInt8, VECTOR_LEN)

# The typed stream every encoder reads (input window only, one row per event).
STREAM_SCHEMA: dict[str, pl.DataType] = {
    "client_id": pl.Int64(),
    "timestamp": pl.Datetime("us"),
    "event_type": pl.UInt8(),
    "sku": pl.Int64(),
    "category": pl.Int64(),
    "price": pl.Int16(),
    "url": pl.Int64(),
    "tokens": TOKENS,  # item name for buy/add/remove, query for search, null for visits
}

PRODUCTS_SCHEMA: dict[str, pl.DataType] = {
    "sku": pl.Int64(),
    "category": pl.Int64(),
    "price": pl.Int16(),
    "name": TOKENS,
}

TASKS: tuple[str, ...] = (
    "churn",
    "conversion",
    "propensity_category",
    "propensity_sku",
    "propensity_new_sku",
    "propensity_price",
)
# Entries `ubp run` scores beside the profile: chance, the organisers' baseline, plain counts, and a
# synthetic world's oracle.
REFERENCES = ("random", "baseline", "counts", "oracle")
PROPENSITY_TASKS: tuple[str, ...] = tuple(t for t in TASKS if t.startswith("propensity_"))


def propensity_column(task: str) -> str:
    """The target-table column a propensity task matches: the last word of its name."""
    return task.rsplit("_", 1)[-1]
