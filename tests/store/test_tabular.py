from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from shipyard import Batch, InputError
from shipyard.core.inference import infer_contract
from shipyard.store.tabular import read_rows, write_table


def test_csv_keeps_a_bad_cell_for_the_contract_to_report(tmp_path: Path) -> None:
    contract = infer_contract(Batch.from_columns({"x": [1.0, 2.0], "c": ["007", "1"]}), task="regression")
    path = tmp_path / "rows.csv"
    path.write_text("x,c\n1.5,007\nabc,1\n,1\n")
    rows = read_rows(path, contract=contract)
    assert rows.columns["c"].tolist() == ["007", "1", "1"]
    result = contract.validate(rows)
    assert [(v.row, v.feature) for v in result.violations] == [(1, "x"), (2, "x")]


def test_jsonl_and_parquet_read_to_the_same_rows(tmp_path: Path) -> None:
    table = pa.table({"x": [1.0, 2.0], "c": ["a", None]})
    write_table(table, tmp_path / "rows.parquet")
    write_table(table, tmp_path / "rows.jsonl")
    a = read_rows(tmp_path / "rows.parquet")
    b = read_rows(tmp_path / "rows.jsonl")
    assert a.columns["x"].tolist() == b.columns["x"].tolist()
    assert a.columns["c"].tolist() == b.columns["c"].tolist() == ["a", None]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("empty.csv", "", "is empty"),
        ("rows.txt", "x\n1\n", "suffix"),
        ("bad.jsonl", '{"x": 1}\nnot json\n', "line 2 is not JSON"),
        ("bad.parquet", "not parquet", "cannot read"),
    ],
)
def test_unreadable_inputs_get_clear_errors(tmp_path: Path, name: str, content: str, message: str) -> None:
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(InputError, match=message):
        read_rows(path)


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        read_rows(tmp_path / "nope.csv")
