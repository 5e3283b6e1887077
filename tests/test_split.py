"""`ubp split`: window boundaries as the organisers' split_data.py, target files, the input window.

The hand-made world: last purchase 2024-03-28 15:00:00, so the train target starts at
2024-03-01 00:00:00 (27 days earlier, at midnight) and the validation target at 2024-03-15.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from ubp.data.split import split, target_starts
from ubp.data.window import InputWindow
from ubp.errors import InputError
from ubp.layout import EventType

VEC = "[ 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 ]"
TOKENS = list(range(1, 17))
TTS, VTS, END = datetime(2024, 3, 1), datetime(2024, 3, 15), datetime(2024, 3, 28, 15)
RELEVANT = [1, 2, 3, 4, 6, 7, 8]


def events(rows: list[tuple], col: str, dtype: pl.DataType = pl.Int64) -> pl.DataFrame:
    return pl.DataFrame(rows, schema={"client_id": pl.Int64, "timestamp": pl.String, col: dtype}, orient="row")


def raw_world(root: Path) -> Path:
    """Purchases on both sides of each boundary; no remove_from_cart at all."""
    (root / "input").mkdir(parents=True)
    tables = {
        "product_properties": pl.DataFrame(
            {"sku": [10, 20, 30, 40], "category": [7, 8, 8, 9], "price": [3, 50, 99, 0], "name": [VEC] * 4}
        ),
        "product_buy": events(
            [
                (1, "2024-02-10 10:00:00", 20),
                (2, "2024-02-11 10:00:00", 10),
                (3, "2024-02-12 10:00:00", 20),
                (1, "2024-02-29 23:59:59", 30),  # last second of the input window
                (2, "2024-03-01 00:00:00", 40),  # exactly train_target_start: train target
                (4, "2024-03-10 00:00:00", 40),
                (3, "2024-03-14 23:59:59", 10),
                (1, "2024-03-15 00:00:00", 20),  # exactly validation_target_start: validation
                (5, "2024-03-28 15:00:00", 40),  # end_date: validation
            ],
            "sku",
        ),
        "add_to_cart": events([(1, "2024-02-01 00:00:00", 10), (6, "2024-03-01 00:00:00", 30)], "sku"),
        "remove_from_cart": events([], "sku"),
        "page_visit": events(
            [(1, "2024-02-01 09:00:00", 100), (7, "2024-03-01 00:00:00", 101), (7, "2024-04-01 00:00:00", 102)], "url"
        ),
        "search_query": events([(2, "2024-02-05 08:00:00", VEC)], "query", pl.String),
    }
    for name, frame in tables.items():
        frame.write_parquet(root / f"{name}.parquet")
    np.save(root / "input" / "relevant_clients.npy", np.array(RELEVANT, dtype=np.int64))
    return root


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    root = raw_world(tmp_path_factory.mktemp("split") / "world")
    return root, split(root)


def test_target_starts_follow_the_organisers() -> None:
    assert target_starts(END) == (TTS, VTS)
    assert target_starts(datetime(2024, 3, 28, 0, 0, 0)) == (TTS, VTS)
    # like theirs, replace(hour, minute, second) keeps sub-second digits
    assert target_starts(datetime(2024, 3, 28, 1, 2, 3, 500))[0] == datetime(2024, 3, 1, 0, 0, 0, 500)


def test_windows_and_boundaries(world) -> None:
    root, summary = world
    assert (summary.end_date, summary.train_target_start, summary.validation_target_start) == (END, TTS, VTS)
    buys = pl.read_parquet(root / "input" / "product_buy.parquet")
    assert buys.columns == ["client_id", "timestamp", "sku"] and buys.schema["timestamp"] == pl.Datetime("us")
    assert buys["sku"].to_list() == [20, 10, 20, 30]
    assert pl.read_parquet(root / "input" / "add_to_cart.parquet")["client_id"].to_list() == [1]
    assert pl.read_parquet(root / "input" / "page_visit.parquet")["url"].to_list() == [100]
    search = pl.read_parquet(root / "input" / "search_query.parquet")
    assert search["query"].to_list() == [VEC]  # the raw string, as the organisers' pipeline reads it
    assert pl.read_parquet(root / "input" / "remove_from_cart.parquet").columns == ["client_id", "timestamp", "sku"]
    train = pl.read_parquet(root / "target" / "train_target.parquet")
    assert train.columns == ["client_id", "timestamp", "sku", "category", "price", "name"]
    assert train.select("client_id", "sku", "category", "price").rows() == [(2, 40, 9, 0), (4, 40, 9, 0), (3, 10, 7, 3)]
    assert train["name"].to_list() == [VEC] * 3
    valid = pl.read_parquet(root / "target" / "validation_target.parquet")
    assert valid.select("client_id", "timestamp").rows() == [(1, VTS), (5, END)]
    assert summary.input_rows == {"product_buy": 4, "add_to_cart": 1, "remove_from_cart": 0, "page_visit": 1, "search_query": 1}
    assert summary.target_rows == {"train_target": 3, "validation_target": 2}
    assert "absent event types in the input window (zero rows): remove_from_cart" in summary.describe()
    assert not (root / ".split.tmp").exists()


def test_target_definition_files(world) -> None:
    root, _ = world
    load = lambda name: np.load(root / "target" / f"{name}.npy").tolist()  # noqa: E731
    assert load("propensity_sku") == [20, 10, 30]  # 2, 1, 1 purchases: the tie goes to the smaller id
    assert load("popularity_propensity_sku") == [2, 1, 1]
    assert load("propensity_category") == [8, 7] and load("popularity_propensity_category") == [3, 1]
    assert load("propensity_price") == list(range(100))
    price_pop = np.zeros(100, dtype=int)
    price_pop[[50, 3, 99]] = [2, 1, 1]
    assert load("popularity_propensity_price") == price_pop.tolist()
    assert load("propensity_new_sku") == [40] and load("popularity_propensity_new_sku") == [2]
    assert load("active_clients") == [1, 2, 3]
    assert all(np.load(p).dtype == np.int64 for p in (root / "target").glob("*.npy"))


def test_input_window(world) -> None:
    root, _ = world
    window = InputWindow.open(root)
    assert window.cutoff == TTS
    assert window.absent_event_types == ["remove_from_cart"]
    assert window.relevant_clients.tolist() == RELEVANT
    stream = pl.read_parquet(window.shards)  # the files as written, without the window's own filter
    assert len(stream) == 7 and stream["timestamp"].max() < TTS
    items = stream.filter(pl.col("event_type") == EventType.PRODUCT_BUY).sort("timestamp")
    assert items.select("sku", "category", "price").rows() == [(20, 8, 50), (10, 7, 3), (20, 8, 50), (30, 8, 99)]
    assert items["tokens"].to_list() == [TOKENS] * 4 and items["url"].null_count() == 4
    visit = stream.filter(pl.col("event_type") == EventType.PAGE_VISIT)
    assert visit["url"].to_list() == [100] and visit["tokens"].to_list() == [None]
    search = stream.filter(pl.col("event_type") == EventType.SEARCH_QUERY)
    assert search["tokens"].to_list() == [TOKENS] and search["sku"].to_list() == [None]


def test_shipped_target_files_win(tmp_path: Path) -> None:
    root = raw_world(tmp_path / "world")
    (root / "target").mkdir()
    np.save(root / "target" / "propensity_sku.npy", np.array([30, 40]))
    np.save(root / "target" / "propensity_category.npy", np.array([12345]))  # never bought anywhere
    np.save(root / "target" / "active_clients.npy", np.array([8]))
    split(root)
    assert np.load(root / "target" / "propensity_sku.npy").tolist() == [30, 40]
    assert np.load(root / "target" / "popularity_propensity_sku.npy").tolist() == [1, 0]
    assert np.load(root / "target" / "popularity_propensity_category.npy").tolist() == [1]  # never all zeros
    assert np.load(root / "target" / "active_clients.npy").tolist() == [8]


def test_split_needs_a_purchase_and_leaves_nothing(tmp_path: Path) -> None:
    root = raw_world(tmp_path / "world")
    events([], "sku").write_parquet(root / "product_buy.parquet")
    with pytest.raises(InputError, match=r"product_buy\.parquet: column 'timestamp': no rows"):
        split(root)
    assert not (root / "target").exists() and not (root / "input" / "window").exists()


def test_split_reprepares_a_stale_store(tmp_path: Path) -> None:
    root = raw_world(tmp_path / "world")
    assert "prepared store (re)built first" in split(root).describe()
    assert "prepared store" not in split(root).describe()
    events([(9, "2024-01-01 00:00:00", 555)], "url").write_parquet(root / "page_visit.parquet")
    summary = split(root)
    assert "prepared store (re)built first" in summary.describe() and summary.input_rows["page_visit"] == 1
    assert InputWindow.open(root).event_counts["page_visit"] == 1
