"""The CLI's rendering: JSON on stdout, one-line errors on stderr, tables with empty cells for None."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from shipyard.cli.render import emit_json, error, key_values, table


def test_json_is_indented_keeps_non_ascii_and_shows_other_values_as_text(
    capsys: pytest.CaptureFixture[str],
) -> None:
    emit_json({"name": "crédit", "at": dt.date(2026, 11, 1), "rows": 3})
    out = capsys.readouterr().out
    assert json.loads(out) == {"name": "crédit", "at": "2026-11-01", "rows": 3}
    assert '\n  "name": "crédit"' in out and out.endswith("}\n")


def test_an_error_is_one_line_on_stderr_with_its_brackets_kept(capsys: pytest.CaptureFixture[str]) -> None:
    error("missing column(s), expected by the contract: ['country'] [bold]")
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == "error: missing column(s), expected by the contract: ['country'] [bold]\n"


def test_a_table_shows_its_title_columns_and_none_as_an_empty_cell(
    capsys: pytest.CaptureFixture[str],
) -> None:
    table("the registry", ["name", "latest", "aliases"], [("fraud", 2, None)])
    out = capsys.readouterr().out
    assert "the registry" in out
    assert "name" in out and "latest" in out and "aliases" in out
    [row] = [line for line in out.splitlines() if "fraud" in line]
    assert "2" in row and "None" not in row


def test_key_values_show_each_fact_on_its_line(capsys: pytest.CaptureFixture[str]) -> None:
    key_values("fraud:1", [("flavor", "sklearn"), ("signed", None)])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].strip() == "fraud:1"
    assert any(line.split() == ["flavor", "sklearn"] for line in lines)
    assert any(line.split() == ["signed"] for line in lines)
