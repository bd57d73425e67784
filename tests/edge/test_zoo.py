"""The export zoo: every model of `zoo.py` exported to ONNX through the parity gate; the coverage
table of docs/edge.md is written from this run.

At least 90% of the zoo must export with parity, and every refusal must name the step that
could not be converted. The table between the markers in docs/edge.md is rewritten by this test,
so the docs say what the code does with the installed versions.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.edge.zoo import Entry, entries

from shipyard import Registry
from shipyard.config import Settings
from shipyard.edge.export import export
from shipyard.errors import ExportError

DOCS = Path(__file__).resolve().parents[2] / "docs" / "edge.md"
START, END = "<!-- zoo:start -->", "<!-- zoo:end -->"


@dataclass(frozen=True)
class Outcome:
    """What exporting one zoo entry did."""

    entry: Entry
    exported: bool
    detail: str
    max_diff: float | None = None
    rows: int = 0
    onnx_kb: float = 0.0


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> list[Outcome]:
    home = tmp_path_factory.mktemp("zoo")
    found: list[Outcome] = []
    with Registry(Settings.for_home(home / "home"), actor="tester") as reg, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for entry in entries():
            model, frame = entry.fit()
            version = reg.register(model, name=entry.name, train_data=frame, target="y")
            out = home / "out" / entry.name
            try:
                result = export(str(version.ref), to="onnx", out=out, registry=reg)
            except ExportError as exc:
                found.append(Outcome(entry, False, str(exc)))
                continue
            report = result.report
            found.append(
                Outcome(
                    entry,
                    True,
                    "parity",
                    max_diff=report.max_abs_diff,
                    rows=report.rows,
                    onnx_kb=(out / "model.onnx").stat().st_size / 1024,
                )
            )
    return found


def test_at_least_90_percent_of_the_zoo_exports_with_parity(outcomes: list[Outcome]) -> None:
    meant = [o for o in outcomes if not o.entry.refused]
    exported = [o for o in meant if o.exported]
    assert len(outcomes) >= 30
    assert len(exported) / len(meant) >= 0.9, [(o.entry.name, o.detail) for o in meant if not o.exported]
    for outcome in exported:
        assert outcome.max_diff is not None and outcome.max_diff <= 1e-6, outcome


def test_every_refusal_names_the_step(outcomes: list[Outcome]) -> None:
    for outcome in outcomes:
        if outcome.exported:
            assert not outcome.entry.refused, f"{outcome.entry.name} was meant to be refused"
            continue
        assert re.search(r"step '\w+'|\(\w+\)", outcome.detail), outcome.detail
    refused = {o.entry.name for o in outcomes if not o.exported}
    assert "pipeline-function-transformer" in refused


def test_the_docs_coverage_table_is_this_run(outcomes: list[Outcome]) -> None:
    table = coverage_table(outcomes)
    text = DOCS.read_text(encoding="utf-8")
    assert START in text and END in text, f"{DOCS} has no {START} ... {END} markers for the zoo's table"
    before, rest = text.split(START, 1)
    _, after = rest.split(END, 1)
    DOCS.write_text(f"{before}{START}\n{table}{END}{after}", encoding="utf-8")


def coverage_table(outcomes: list[Outcome]) -> str:
    """The zoo as a Markdown table: model, family, task, outcome, parity, sizes."""
    meant = [o for o in outcomes if not o.entry.refused]
    exported = sum(o.exported for o in meant)
    lines = [
        f"{exported} of {len(meant)} models exported with parity ({100 * exported / len(meant):.0f}%); "
        f"{len(outcomes) - len(meant)} refused on purpose.",
        "",
        "| model | family | task | export | max abs diff (float64) | rows compared | ONNX size |",
        "| --- | --- | --- | --- | ---: | ---: | ---: |",
    ]
    for o in outcomes:
        if o.exported:
            lines.append(
                f"| {o.entry.name} | {o.entry.family} | {o.entry.task} | ONNX, parity | "
                f"{o.max_diff:.1e} | {o.rows} | {o.onnx_kb:.1f} KB |"
            )
        else:
            reason = o.detail.split("\n", 1)[0].replace("|", "/")
            lines.append(f"| {o.entry.name} | {o.entry.family} | {o.entry.task} | refused: {reason} | | | |")
    return "\n".join(lines) + "\n"
