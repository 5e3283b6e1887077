"""The input window of any log in the challenge layout at an as-of date, for applying a saved profile.

The log (a local folder or an object-store URI) is validated and typed like any other (`ubp
prepare`, in place), then every event before
`as_of` goes into a window in the cache, keyed by the log's content, the date and the code: the
same log at the same date is cut once, a moved log folder is not cut again, and nothing at or
after `as_of` is ever read by a block.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl

from ubp import store
from ubp.cache import touch, write_meta
from ubp.data.conversions import PrepareOptions
from ubp.data.prepare import RELEVANT, is_current, prepare, raw_fingerprint, read_prepared
from ubp.data.raw import read_relevant_clients
from ubp.data.split import typed_stream
from ubp.data.window import InputWindow, write_window
from ubp.errors import UsageError
from ubp.fingerprint import code_version, digest, file_digest, files_fingerprint
from ubp.layout import EVENT_TYPES

log = logging.getLogger(__name__)


def last_event(data_dir: Path | str) -> datetime | None:
    """Latest timestamp over every event type of a prepared log."""
    frames = [read_prepared(data_dir, t).select(pl.col("timestamp").max()) for t in EVENT_TYPES]
    return pl.concat(pl.collect_all(frames)).select(pl.col("timestamp").max()).item()


def default_as_of(data_dir: Path | str) -> datetime:
    """Midnight after the log's last event: the whole log, as a daily job would see it the next day."""
    last = last_event(data_dir)
    if last is None:
        raise UsageError(f"{data_dir}: the log has no event at all; there is nothing to embed from")
    return datetime.combine(last.date() + timedelta(days=1), datetime.min.time())


def window_at(data_dir: Path | str, as_of: datetime | None, cache: Path,
              options: PrepareOptions | None = None) -> InputWindow:
    """The window of `data_dir`'s events before `as_of` (default: `default_as_of`), cut once per
    content. `options` (None: a current store as it was prepared, else the defaults) is how a model
    passes its fit log's price edges, so a later log's float prices fall in the buckets it was fitted on."""
    data_dir = store.resolve(data_dir)
    if not is_current(data_dir, options):
        log.info("%s", prepare(data_dir, options or PrepareOptions()).describe())
    as_of = as_of or default_as_of(data_dir)
    edges = options.price_edges if options is not None else None
    key = {"raw": raw_fingerprint(data_dir), "relevant": files_fingerprint(data_dir, [RELEVANT]),
           "as_of": as_of.isoformat(), "code": code_version(__name__),
           "price_edges": file_digest(edges) if edges is not None else None}
    folder = Path(cache) / "windows" / f"window-{digest(key)}"
    if (folder / "meta.json").is_file():
        touch(folder)
        log.info("window of %s before %s: cached (%s)", data_dir, as_of, folder)
        return InputWindow.open(folder)
    relevant = read_relevant_clients(store.join(data_dir, RELEVANT))
    products = read_prepared(data_dir, "product_properties").collect()
    window = write_window(typed_stream(data_dir), products, as_of, folder / "input", relevant)
    write_meta(folder, "windows", {**key, "data_dir": data_dir})
    return window
