"""`ubp prepare`: every kind of bad raw input gets one error naming file, column and an example row."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from click.testing import CliRunner

from ubp.cli import main
from ubp.data.prepare import is_current, prepare
from ubp.data.raw import vector_problem
from ubp.errors import InputError

VEC = "[ 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 255 ]"
TS = ["2024-01-01 10:00:00", "2024-01-02 10:00:00", "2024-01-03 10:00:00"]


def raw_tables() -> dict[str, pl.DataFrame]:
    """Three rows per event type; SKUs 10 and 20 exist."""
    ev = {"client_id": [1, 2, 3], "timestamp": TS}
    return {
        "product_properties": pl.DataFrame({"sku": [10, 20], "category": [7, 8], "price": [0, 99], "name": [VEC, VEC]}),
        "product_buy": pl.DataFrame(ev | {"sku": [10, 20, 10]}),
        "add_to_cart": pl.DataFrame(ev | {"sku": [20, 20, 10]}),
        "remove_from_cart": pl.DataFrame(ev | {"sku": [10, 10, 10]}),
        "page_visit": pl.DataFrame(ev | {"url": [5, 6, 7]}),
        "search_query": pl.DataFrame(ev | {"query": [VEC, VEC, VEC]}),
    }


def write_raw(root: Path, tables: dict[str, pl.DataFrame]) -> Path:
    (root / "input").mkdir(parents=True, exist_ok=True)
    for name, frame in tables.items():
        frame.write_parquet(root / f"{name}.parquet")
    np.save(root / "input" / "relevant_clients.npy", np.array([1, 2, 3], dtype=np.int64))
    return root


def with_column(name: str, col: str, values: list, dtype: pl.DataType | None = None) -> dict[str, pl.DataFrame]:
    tables = raw_tables()
    tables[name] = tables[name].with_columns(pl.Series(col, values, dtype=dtype))
    return tables


def assert_fails(root: Path, file: str, column: str | None, problem: str, row: int | None) -> str:
    """prepare fails with `DIR/file: column 'c': problem (example row: row N: ...)` and writes nothing."""
    with pytest.raises(InputError) as err:
        prepare(root)
    msg = str(err.value)
    assert msg.startswith(f"{root / file}: ")
    if column is not None:
        assert f": column '{column}': " in msg
    assert problem in msg
    if row is not None:
        assert re.search(rf"\(example row: row {row}: client_id=|\(example row: row {row}: sku=", msg), msg
    assert not (root / "prepared").exists() and not (root / "prepared.tmp").exists()
    return msg


def test_valid_world_is_prepared(tmp_path: Path) -> None:
    root = write_raw(tmp_path, raw_tables())
    summary = prepare(root)
    assert summary.rows == {t: 3 for t in summary.rows} and summary.n_products == 2
    assert is_current(root)
    q = pl.read_parquet(root / "prepared" / "search_query.parquet")
    assert q.schema == pl.Schema({"client_id": pl.Int64, "timestamp": pl.Datetime("us"), "query": pl.Array(pl.UInt8, 16)})
    assert q["query"][0].to_list() == list(range(1, 16)) + [255]
    products = pl.read_parquet(root / "prepared" / "product_properties.parquet")
    assert products.schema["price"] == pl.Int16 and products.schema["name"] == pl.Array(pl.UInt8, 16)
    (root / "page_visit.parquet").touch()  # a new date alone is not a change: the key is the content
    assert is_current(root)
    visits = pl.read_parquet(root / "page_visit.parquet")
    visits.head(2).write_parquet(root / "page_visit.parquet")  # a changed raw file makes the store stale
    assert not is_current(root)


def test_vector_strings_with_any_spacing_and_datetime_timestamps(tmp_path: Path) -> None:
    tables = raw_tables()
    tables["search_query"] = tables["search_query"].with_columns(
        pl.Series("query", ["[1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16]", "  [ 0   0 0 0 0 0 0 0 0 0 0 0 0 0 0 7 ] ", VEC]),
        pl.col("timestamp").str.to_datetime("%Y-%m-%d %H:%M:%S", time_unit="ns"),
    )
    prepare(write_raw(tmp_path, tables))
    q = pl.read_parquet(tmp_path / "prepared" / "search_query.parquet")
    assert q["query"][1].to_list() == [0] * 15 + [7]
    assert q["timestamp"].to_list() == pl.Series(TS).str.to_datetime().to_list()


def test_zero_row_file_is_valid(tmp_path: Path) -> None:
    tables = raw_tables()
    tables["search_query"] = tables["search_query"].clear()
    summary = prepare(write_raw(tmp_path, tables))
    assert summary.rows["search_query"] == 0 and summary.absent_event_types == ["search_query"]
    assert "absent event types (zero rows): search_query" in summary.describe()


@pytest.mark.parametrize(
    "tables, file, column, problem, row",
    [
        (with_column("page_visit", "timestamp", [TS[0], "2024-13-01 00:00:00", TS[2]]), "page_visit.parquet", "timestamp", "unparseable timestamp", 1),
        (with_column("page_visit", "timestamp", [TS[0], TS[1], "2024-1-3 10:00:00"]), "page_visit.parquet", "timestamp", "unparseable timestamp", 2),
        (with_column("product_buy", "timestamp", [TS[0], None, TS[2]]), "product_buy.parquet", "timestamp", "null value", 1),
        (with_column("page_visit", "client_id", ["a", "b", "c"]), "page_visit.parquet", "client_id", "client_id ids are strings in page_visit but integers in", None),
        (with_column("page_visit", "timestamp", [1, 2, 3]), "page_visit.parquet", "timestamp", "has dtype Int64", None),
        (with_column("add_to_cart", "client_id", [1.0, float("nan"), 3.0]), "add_to_cart.parquet", "client_id", "null or NaN id", 1),
        (with_column("add_to_cart", "client_id", [1.0, 2.0, 3.0]), "add_to_cart.parquet", "client_id", "has dtype Float64", None),
        (with_column("page_visit", "url", [5, 6, None]), "page_visit.parquet", "url", "null value", 2),
        (with_column("search_query", "query", [VEC, VEC, "[1 2 3]"]), "search_query.parquet", "query", "malformed vector string: 3 values, expected 16", 2),
        (with_column("search_query", "query", [VEC.replace("255", "256"), VEC, VEC]), "search_query.parquet", "query", "value 256 outside 0..255", 0),
        (with_column("search_query", "query", [VEC, VEC.replace(" 5 ", " x "), VEC]), "search_query.parquet", "query", "non-integer item 'x'", 1),
        (with_column("product_properties", "name", [VEC, "[-1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16]"]), "product_properties.parquet", "name", "malformed vector string", 1),
        (with_column("product_properties", "sku", [10, 10]), "product_properties.parquet", "sku", "duplicate values", 0),
        (with_column("product_properties", "price", [0, 40000]), "product_properties.parquet", "price", "integer price 40000 is not a challenge price bucket 0..99", 1),
        (with_column("remove_from_cart", "sku", [10, 10, 30]), "remove_from_cart.parquet", "sku", "SKU 30 is absent from", 2),
    ],
)
def test_bad_values(tmp_path: Path, tables, file, column, problem, row) -> None:
    assert_fails(write_raw(tmp_path, tables), file, column, problem, row)


def test_missing_file_column_and_unreadable_files(tmp_path: Path) -> None:
    root = write_raw(tmp_path, raw_tables())
    (root / "search_query.parquet").unlink()
    assert_fails(root, "search_query.parquet", None, "file is missing", None)
    write_raw(root, raw_tables() | {"page_visit": raw_tables()["page_visit"].drop("url")})
    msg = assert_fails(root, "page_visit.parquet", "url", "missing (columns present: client_id, timestamp)", None)
    assert msg == f"{root / 'page_visit.parquet'}: column 'url': missing (columns present: client_id, timestamp)"
    write_raw(root, raw_tables())
    (root / "product_buy.parquet").write_bytes(b"")
    assert_fails(root, "product_buy.parquet", None, "file is empty (zero bytes)", None)
    (root / "product_buy.parquet").write_bytes(b"not a parquet file at all")
    assert_fails(root, "product_buy.parquet", None, "cannot be read as parquet", None)


def test_relevant_clients_checked(tmp_path: Path) -> None:
    root = write_raw(tmp_path, raw_tables())
    np.save(root / "input" / "relevant_clients.npy", np.array([1, 2, 2]))
    assert_fails(root, "input/relevant_clients.npy", None, "duplicate client ids (example row: 2)", None)


def test_failed_prepare_keeps_previous_store_and_leaves_no_temporary(tmp_path: Path) -> None:
    root = write_raw(tmp_path, raw_tables())
    prepare(root)
    before = (root / "prepared" / "manifest.json").read_text()
    write_raw(root, with_column("page_visit", "url", [5, None, 7]))
    with pytest.raises(InputError):
        prepare(root)
    assert (root / "prepared" / "manifest.json").read_text() == before and not (root / "prepared.tmp").exists()


def test_cli_reports_one_line_and_exit_status_1(tmp_path: Path) -> None:
    root = write_raw(tmp_path, with_column("page_visit", "url", [5, None, 7]))
    result = CliRunner().invoke(main, ["prepare", "--data-dir", str(root)])
    assert result.exit_code == 1
    assert result.output.strip() == (
        f"Error: {root / 'page_visit.parquet'}: column 'url': null value "
        "(example row: row 1: client_id=2, timestamp='2024-01-02 10:00:00', url=None)"
    )


def test_vector_problem_messages() -> None:
    assert vector_problem("[1 2]") == "2 values, expected 16"
    assert vector_problem("[1 2 a]") == "non-integer item 'a'"
    assert vector_problem("[" + "300 " * 16 + "]") == "value 300 outside 0..255"
