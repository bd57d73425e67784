"""The evaluation in a few lines of Markdown, for a CI run's page (GitHub's job summary, a GitLab
artifact): the headline metrics beside the champion's and the gates' verdict, rule by rule.

The HTML report stays the full account; this is what a reviewer reads before opening it.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from shipyard.core.metric_table import headline_metrics
from shipyard.evaluation.gates import GateResult
from shipyard.evaluation.result import Evaluation
from shipyard.store.files import atomic_path

__all__ = ["add_summary", "render_summary"]


def render_summary(evaluation: Evaluation, gates: GateResult | None = None) -> str:
    """The Markdown summary of an evaluation and, if given, its gate result."""
    ev, rival = evaluation, evaluation.champion
    data = ev.data
    rejected = int(data.get("rejected", 0))
    lines = [
        f"### Evaluation of {ev.ref} (evaluation {ev.id})",
        "",
        f"{ev.task} model, {int(data.get('evaluated', 0)):,} row(s) of {_cell(data.get('source'))}"
        + (f", **{rejected:,} rejected by the contract**" if rejected else "")
        + (f"; champion {rival.ref} ({ev.champion_alias})" if rival is not None else "; no champion"),
        "",
        f"| metric | {ev.ref} | 95% interval |" + (f" {rival.ref} |" if rival is not None else ""),
        "| --- | ---: | --- |" + (" ---: |" if rival is not None else ""),
    ]
    for name in headline_metrics("regression" if ev.task == "regression" else "classification"):
        mine = ev.metrics.get(name)
        if not isinstance(mine, int | float):
            continue
        ci = ev.confidence.get(name)
        row = f"| {name} | {_num(mine)} | " + (
            f"[{_num(ci.get('low'))}, {_num(ci.get('high'))}]" if ci else ""
        )
        if rival is not None:
            row += f" | {_num(rival.metrics.get(name))}"
        lines.append(row + " |")
    if gates is not None:
        lines += [
            "",
            f"### Gates of {gates.ref} vs {gates.champion or 'no champion'} ({gates.alias}): "
            + ("PASSED" if gates.passed else "**FAILED**"),
            "",
            "| rule | value | bound | verdict | reason |",
            "| --- | ---: | ---: | --- | --- |",
        ]
        lines += [
            f"| {_cell(r.rule.text)} | {_num(r.value)} | {_num(r.limit)} "
            f"| {'pass' if r.passed else '**FAIL**'} | {_cell(r.reason)} |"
            for r in gates.results
        ]
        lines += ["", *(f"- {_cell(note)}" for note in gates.notes)]
    return "\n".join(lines).rstrip("\n") + "\n"


def add_summary(
    path: str | os.PathLike[str], evaluation: Evaluation, gates: GateResult | None = None
) -> Path:
    """Add the summary to the end of the Markdown file `path` (created if missing).

    A CI run's summary file gathers what several commands add, so the text goes after what is
    there; the whole file is written under a temporary name and renamed, never half-written.
    """
    file = Path(path)
    before = file.read_text(encoding="utf-8") if file.exists() else ""
    with atomic_path(file) as tmp:
        tmp.write_text(
            before + ("\n" if before else "") + render_summary(evaluation, gates), encoding="utf-8"
        )
    return file


def _num(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def _cell(value: Any) -> str:
    """Text safe in a Markdown table cell: no pipe ends the cell, no newline ends the row."""
    return str(value).replace("|", "\\|").replace("\n", " ")
