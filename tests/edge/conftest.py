"""skl2onnx's converter tables put back after every test module, as the export puts them back after
every conversion: a module whose tests register our converters directly leaves no trace for the next."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture(autouse=True, scope="module")
def skl2onnx_tables_restored() -> Iterator[None]:
    from skl2onnx import _parse, _supported_operators
    from skl2onnx.common import _registration

    tables: list[dict[Any, Any]] = [
        _supported_operators.sklearn_operator_name_map,
        _registration._converter_pool,
        _registration._shape_calculator_pool,
        _parse.sklearn_parsers_map,
    ]
    saved = [dict(table) for table in tables]
    yield
    for table, before in zip(tables, saved, strict=True):
        table.clear()
        table.update(before)
