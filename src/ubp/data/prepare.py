"""`ubp prepare`: validate the raw files once and write the typed store DIR/prepared/.

Timestamps become UTC datetimes and vector strings 16 uint8 tokens here, at the door, so no
later stage parses a string again; a real log's own types (ISO timestamps, float prices, string
ids, free text) are converted here too (`ubp.data.conversions`), each conversion listed in the
summary. DIR may be a local folder or an object-store URI (`ubp.store`). The store is built whole
and its manifest written last (`ubp.store.rebuilt_dir`: locally a temporary folder swapped into
place), so a failed or killed run leaves no store that passes for a finished one. Each raw file is
typed, written and checked by one task on the engine (`ubp.engines`).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from ubp import store
from ubp.data.conversions import PrepareOptions, hash_strings, price_edges, timestamp_report
from ubp.data.raw import (
    EVENT_COLUMNS, PROPERTY_COLUMNS, RawFile, check_known_skus, check_no_nulls, check_unique, open_raw,
    read_relevant_clients, relevant_clients_are_strings,
)
from ubp.errors import input_error
from ubp.fingerprint import code_version, files_fingerprint
from ubp.layout import EVENT_TYPES, ITEM_EVENTS, PROPERTIES_FILE

PREPARED = "prepared"
MANIFEST = "manifest.json"
PRICE_EDGES = "price_edges.json"
ID_MAPS = "ids"  # DIR/prepared/ids/<domain>.parquet: raw string id → int64, for string-id logs
RELEVANT = "input/relevant_clients.npy"
# Id domains: every column that names the same thing must hash the same way.
ID_DOMAINS: dict[str, list[tuple[str, str]]] = {
    "client_id": [(t, "client_id") for t in EVENT_TYPES],
    "sku": [(t, "sku") for t in ITEM_EVENTS] + [("product_properties", "sku")],
    "category": [("product_properties", "category")],
    "url": [("page_visit", "url")],
}


@dataclass(frozen=True)
class PrepareSummary:
    """What `prepare` wrote: rows per event type and products, and every conversion it applied."""

    out: str
    rows: dict[str, int]
    n_products: int
    seconds: float
    conversions: list[str] = field(default_factory=list)
    options: PrepareOptions = PrepareOptions()

    @property
    def absent_event_types(self) -> list[str]:
        return [t for t in EVENT_TYPES if self.rows[t] == 0]

    def describe(self) -> str:
        lines = [f"prepared {self.out} in {self.seconds:.1f} s"]
        lines += [f"  {t:<17} {n:>12,} rows" for t, n in self.rows.items()]
        lines.append(f"  {'products':<17} {self.n_products:>12,} rows")
        if self.absent_event_types:
            lines.append(f"  absent event types (zero rows): {', '.join(self.absent_event_types)}")
        lines.append("  conversions (" + ", ".join(self.options.describe()) + "):")
        lines += [f"    {c}" for c in self.conversions] or ["    none: the log is in the challenge's own types"]
        return "\n".join(lines)


def prepared_dir(data_dir: Path | str) -> str:
    return store.join(store.resolve(data_dir), PREPARED)


def prepare(data_dir: Path | str, options: PrepareOptions = PrepareOptions()) -> PrepareSummary:
    """Validate DIR's raw files and write DIR/prepared/ (see module docstring)."""
    from ubp.engines import map_shards

    start = time.perf_counter()
    data_dir = store.resolve(data_dir)
    if not store.is_dir(data_dir):
        raise input_error(data_dir, "no such data directory")
    properties = open_raw(store.join(data_dir, PROPERTIES_FILE), PROPERTY_COLUMNS, options)
    events = {t: open_raw(store.join(data_dir, f"{t}.parquet"), cols, options) for t, cols in EVENT_COLUMNS.items()}
    relevant_path = store.join(data_dir, RELEVANT)
    relevant = read_relevant_clients(relevant_path)
    files = {"product_properties": properties, **events}
    string_domains = _string_id_domains(files, relevant_path)
    edges = _price_edges(properties, options)
    if edges is not None:
        properties = properties.with_edges(edges)

    with store.rebuilt_dir(prepared_dir(data_dir)) as tmp:
        products_path = store.join(tmp, PROPERTIES_FILE)
        products = properties.typed().collect()
        store.write_parquet(products, products_path)
        check_no_nulls(properties, products_path)
        check_unique(properties, products, "sku")
        writer = TypedWriter(tmp, products_path, properties.path)
        rows = {kind: table["rows"][0] for kind, table in zip(events, map_shards(writer, list(events.values()), near=relevant_path))}
        conversions = _column_conversions(files)
        conversions += _timestamp_conversions(events, options)
        for domain in string_domains:
            n = _write_id_map(files, domain, relevant_path, store.join(tmp, ID_MAPS, f"{domain}.parquet"))
            conversions.append(f"{domain}: {n:,} distinct string ids hashed to int64 (mapping {PREPARED}/{ID_MAPS}/{domain}.parquet)")
        if edges is not None:
            store.write_json(store.join(tmp, PRICE_EDGES),
                             {"edges": edges.tolist(), "source": str(options.price_edges or PROPERTIES_FILE)})
            conversions.append(f"price: bucket edges in {PREPARED}/{PRICE_EDGES}"
                               + (f" (reused from {options.price_edges})" if options.price_edges else " (catalogue quantiles)"))
        manifest = {"raw": raw_fingerprint(data_dir), "rows": rows, "products": len(products),
                    "options": _options_key(options), "conversions": conversions, "relevant_clients": int(len(relevant))}
        store.write_json(store.join(tmp, MANIFEST), manifest)  # last: a store without it is unfinished
    return PrepareSummary(prepared_dir(data_dir), rows, len(products), time.perf_counter() - start, conversions, options)


@dataclass(frozen=True)
class TypedWriter:
    """Types one raw event file, writes it beside the products and checks it (what a task receives:
    the raw file's location and schema, and three locations)."""

    out: str  # the prepared store being built
    products: str  # its typed product table, written before the events
    properties_path: str  # the raw product file, named in an unknown-SKU error

    def __call__(self, raw: RawFile) -> pl.DataFrame:
        kind = store.basename(raw.path).removesuffix(".parquet")
        path = store.join(self.out, f"{kind}.parquet")
        store.sink_parquet(raw.typed(), path)
        check_no_nulls(raw, path)
        if kind in ITEM_EVENTS:
            check_known_skus(raw, path, store.scan_parquet(self.products).select("sku").collect(), self.properties_path)
        return pl.DataFrame({"rows": [store.parquet_rows(path)]})


def _options_key(options: PrepareOptions) -> dict:
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(options).items()}


def _column_conversions(files: dict[str, RawFile]) -> list[str]:
    """One line per converted column kind: which files, and how."""
    seen: dict[tuple[str, str], list[str]] = {}
    for name, raw in files.items():
        for col, how in raw.conversions().items():
            if "hashed" not in how:  # string ids are reported once per id domain, with their count
                seen.setdefault((col, how), []).append(name)
    return [f"{col}: {how} in {', '.join(names)}" for (col, how), names in seen.items()]


def _timestamp_conversions(events: dict[str, RawFile], options: PrepareOptions) -> list[str]:
    """ISO forms and UTC offsets found in string timestamp columns (each offset converted to UTC)."""
    if not options.iso_timestamps:
        return []
    totals = {"iso_t": 0, "fractional": 0, "offset_converted": 0}
    for raw in events.values():
        if raw.schema["timestamp"] == pl.String:
            for k, v in timestamp_report(raw.scan(), "timestamp", raw.schema["timestamp"]).items():
                totals[k] += v
    lines = []
    if totals["iso_t"] or totals["fractional"]:
        lines.append(f"timestamp: ISO-8601 read ({totals['iso_t']:,} rows with 'T', {totals['fractional']:,} with fractional seconds)")
    if totals["offset_converted"]:
        lines.append(f"timestamp: {totals['offset_converted']:,} rows with a UTC offset converted to UTC")
    return lines


def _string_id_domains(files: dict[str, RawFile], relevant_path: str) -> list[str]:
    """Id domains given as strings; a domain must not mix strings and integers across files."""
    out = []
    for domain, members in ID_DOMAINS.items():
        kinds = {(f, c): files[f].schema[c] == pl.String for f, c in members}
        if domain == "client_id":
            kinds[("input/relevant_clients.npy", "")] = relevant_clients_are_strings(relevant_path)
        if len(set(kinds.values())) > 1:
            strings = [m for m, s in kinds.items() if s]
            ints = [m for m, s in kinds.items() if not s]
            odd = min(strings, ints, key=len)[0]  # the file that differs from the rest
            path = relevant_path if odd[1] == "" else files[odd[0]].path
            raise input_error(
                path, f"{domain} ids are strings in {', '.join(f for f, _ in strings)} but integers in "
                f"{', '.join(f for f, _ in ints)}: one log must name things one way", odd[1] or None,
            )
        if any(kinds.values()):
            out.append(domain)
    return out


def _write_id_map(files: dict[str, RawFile], domain: str, relevant_path: str, path: str) -> int:
    """Write raw string → int64 for one id domain; two strings with one hash are an error."""
    parts = [files[f].scan().select(pl.col(c).alias("raw")) for f, c in ID_DOMAINS[domain]]
    if domain == "client_id":
        parts.append(pl.LazyFrame({"raw": store.load_npy(relevant_path).astype(str)}))
    uniq = pl.concat(parts).drop_nulls().unique().sort("raw").collect(engine="streaming")
    mapping = uniq.with_columns(pl.Series("id", hash_strings(uniq["raw"].to_numpy()), dtype=pl.Int64))
    clash = mapping.filter(pl.col("id").is_duplicated())
    if len(clash):
        a, b = clash.sort("id")["raw"][:2].to_list()
        raise input_error(files[ID_DOMAINS[domain][0][0]].path,
                          f"string ids {a!r} and {b!r} hash to the same int64: rename one", ID_DOMAINS[domain][0][1])
    store.write_parquet(mapping, path)
    return len(mapping)


def _price_edges(properties: RawFile, options: PrepareOptions) -> np.ndarray | None:
    """Bucket edges for float / decimal prices: reused from `options.price_edges`, else the catalogue's quantiles."""
    if properties.schema["price"].is_integer():
        return None
    if options.price_edges is not None:
        path = store.resolve(options.price_edges)
        try:
            edges = np.asarray(store.read_json(path)["edges"], dtype=np.float64)
        except (OSError, ValueError, KeyError) as e:
            raise input_error(path, f"cannot read price edges ({type(e).__name__}): expected a {PRICE_EDGES} from a prepared store") from e
        return edges
    prices = properties.scan().select(pl.col("price").cast(pl.Float64)).collect()["price"].drop_nulls().drop_nans()
    if len(prices) == 0:
        raise input_error(properties.path, "no price to take bucket edges from", "price")
    return price_edges(prices.to_numpy())


def raw_fingerprint(data_dir: Path | str) -> dict[str, str | None]:
    """Content digest of each raw table and the code version of this stage: a changed table or
    changed code makes the store stale; a moved folder does not."""
    names = [PROPERTIES_FILE, *(f"{t}.parquet" for t in EVENT_TYPES)]
    return {**files_fingerprint(data_dir, names), "code": code_version(__name__)}


def is_current(data_dir: Path | str, options: PrepareOptions | None = None) -> bool:
    """Whether DIR/prepared/ exists and was built from the raw files as they are now (and with
    `options`, when given: None accepts the options the store was built with)."""
    manifest = store.join(prepared_dir(data_dir), MANIFEST)
    if not store.is_file(manifest):
        return False
    try:
        stored = store.read_json(manifest)
        same_options = options is None or stored.get("options") == _options_key(options)
        return stored["raw"] == raw_fingerprint(data_dir) and same_options
    except FileNotFoundError:
        return False


def read_prepared(data_dir: Path | str, name: str) -> pl.LazyFrame:
    """A prepared table by event type (or `product_properties`)."""
    return store.scan_parquet(store.join(prepared_dir(data_dir), f"{name}.parquet"))
