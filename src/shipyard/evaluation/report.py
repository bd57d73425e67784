"""The evaluation report: one self-contained HTML file (inline CSS and SVG, no script, no network).

It shows the headline metrics with their confidence intervals, ROC and precision-recall curves,
the reliability diagram, confusion matrices, the global importance stored at registration and the
SHAP summary plot of a sample of the rows, slices, fairness, robustness and the gate results,
with the champion beside the challenger when there is one. The same numbers are embedded as JSON
(`<script type="application/json" id="shipyard-evaluation">`) and `report_json` gives them alone.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from shipyard.core.attribution_charts import beeswarm, importance_bars
from shipyard.core.html_kit import COLORS, document, escape, figure, interval, json_script, number
from shipyard.core.jsonsafe import json_safe
from shipyard.core.metric_table import headline_metrics, lower_is_better
from shipyard.core.svg_charts import unit_chart
from shipyard.evaluation.gates import GateResult
from shipyard.evaluation.result import Evaluation
from shipyard.store.files import atomic_path

__all__ = ["render_report", "report_json", "write_report"]

_STYLE = """
.weak{background:#fff1e5}.charts{gap:1.5rem}figcaption{margin-bottom:.3rem}.badge{padding:.1rem .5rem}
.badge.pass{background:#1a7f37}.badge.fail{background:#cf222e}
"""
"""The report's own rules, after the kit's base style."""


def report_json(evaluation: Evaluation, gates: GateResult | None = None) -> dict[str, Any]:
    """The report's numbers as JSON-safe data."""
    data: dict[str, Any] = {"evaluation": evaluation.to_dict()}
    if gates is not None:
        data["gates"] = gates.to_dict()
    return data


def write_report(
    path: str | os.PathLike[str], evaluation: Evaluation, gates: GateResult | None = None
) -> Path:
    """Write the HTML report (or, for a `.json` path, the numbers) via a temporary name and a rename."""
    file = Path(path)
    if file.suffix.lower() == ".json":
        text = json.dumps(json_safe(report_json(evaluation, gates), other=str), indent=2)
    else:
        text = render_report(evaluation, gates)
    with atomic_path(file) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return file


def render_report(evaluation: Evaluation, gates: GateResult | None = None) -> str:
    """The self-contained HTML report."""
    ev = evaluation
    rival = ev.champion
    parts = [_summary(ev)]
    if gates is not None:
        parts.append(_gates(gates))
    parts.append(_headline(ev, rival))
    if ev.task == "classification":
        parts.append(_charts(ev, rival))
        parts.append(_confusions(ev, rival))
    parts.append(_explanations(ev))
    parts.append(_slices(ev))
    parts.append(_fairness(ev))
    parts.append(_robustness(ev, rival))
    parts.append(json_script("shipyard-evaluation", report_json(ev, gates)))
    return document(f"Evaluation of {ev.ref}", _STYLE, parts)


def _summary(ev: Evaluation) -> str:
    data = ev.data
    rejected = int(data.get("rejected", 0))
    lines = [
        f"<p class='muted'>{escape(ev.task)} model &middot; data {escape(data.get('source'))} &middot; "
        f"{int(data.get('evaluated', 0)):,} row(s) evaluated"
        + (f", <b>{rejected:,} rejected by the contract</b>" if rejected else "")
        + f" &middot; target {escape(data.get('target'))} &middot; {escape(ev.created_at)} &middot; "
        f"{ev.seconds:.1f} s</p>"
    ]
    if ev.champion is not None:
        lines.append(
            f"<p class='legend'><span style='color:{COLORS[0]}'>&#9632; challenger {escape(ev.ref)}</span>"
            f"<span style='color:{COLORS[1]}'>&#9632; champion {escape(ev.champion.ref)} "
            f"({escape(ev.champion_alias)})</span></p>"
        )
    elif ev.champion_error:
        lines.append(f"<p class='fail'>{escape(ev.champion_error)}</p>")
    for violation in data.get("violations", []):
        lines.append(f"<p class='muted'>rejected: {escape(violation)}</p>")
    return "\n".join(lines)


def _gates(gates: GateResult) -> str:
    verdict = "pass" if gates.passed else "fail"
    rows = []
    for r in gates.results:
        status = "pass" if r.passed else "fail"
        rows.append(
            f"<tr><td>{escape(r.rule.text)}</td><td>{number(r.value)}</td><td>{number(r.limit)}</td>"
            f"<td>{number(r.champion)}</td><td class='{status}'>{status}</td><td>{escape(r.reason)}</td></tr>"
        )
    notes = "".join(f"<p class='muted'>{escape(n)}</p>" for n in gates.notes)
    return (
        f"<h2>Gates <span class='badge {verdict}'>{verdict.upper()}</span></h2>"
        f"<p class='muted'>policy {escape(gates.policy.source)}, champion alias {escape(gates.alias)} "
        f"({escape(gates.champion or 'none')})</p>{notes}"
        "<table><tr><th>rule</th><th>value</th><th>bound</th><th>champion</th><th>verdict</th>"
        f"<th>reason</th></tr>{''.join(rows)}</table>"
    )


def _headline(ev: Evaluation, rival: Evaluation | None) -> str:
    names = headline_metrics("regression" if ev.task == "regression" else "classification")
    head = "<tr><th>metric</th><th>challenger</th><th>95% interval</th>"
    if rival is not None:
        head += "<th>champion</th><th>interval</th><th>change</th>"
    rows = [head + "</tr>"]
    for name in names:
        mine = ev.metrics.get(name)
        if not isinstance(mine, int | float):
            continue
        row = f"<tr><td>{name}</td><td>{number(mine)}</td><td>{interval(ev.confidence.get(name))}</td>"
        if rival is not None:
            theirs = rival.metrics.get(name)
            row += f"<td>{number(theirs)}</td><td>{interval(rival.confidence.get(name))}</td>"
            if isinstance(theirs, int | float):
                better = (mine < theirs) if lower_is_better(name) else (mine > theirs)
                css = "pass" if better else ("fail" if mine != theirs else "")
                row += f"<td class='{css}'>{mine - theirs:+.4f}</td>"
            else:
                row += "<td></td>"
        rows.append(row + "</tr>")
    return f"<h2>Metrics</h2><table>{''.join(rows)}</table>"


def _charts(ev: Evaluation, rival: Evaluation | None) -> str:
    both = [ev] if rival is None else [ev, rival]
    figures = []
    for kind, x, y, title, diagonal in (
        ("roc", "fpr", "tpr", "ROC curve", "up"),
        ("pr", "recall", "precision", "Precision-recall curve", None),
    ):
        series = []
        for j, e in enumerate(both):
            for label, curve in e.curves.get(kind, {}).items():
                name = f"{e.ref}" + (f" class {label}" if len(e.curves.get(kind, {})) > 1 else "")
                series.append((name, curve[x], curve[y], COLORS[j]))
        if series:
            figures.append(figure(title, unit_chart(series, x, y, diagonal)))
    series = []
    for j, e in enumerate(both):
        curve = e.metrics.get("reliability_uniform")
        if curve and curve.get("confidence"):
            series.append((e.ref, curve["confidence"], curve["observed"], COLORS[j]))
    if series:
        bins = ev.metrics.get("reliability_uniform", {}).get("bins")
        title = f"Reliability diagram ({bins} uniform bins)"
        figures.append(figure(title, unit_chart(series, "mean confidence", "observed", "up", dots=True)))
    return "<h2>Curves</h2><div class='charts'>" + "".join(figures) + "</div>"


def _confusions(ev: Evaluation, rival: Evaluation | None) -> str:
    tables = []
    for e in [ev] if rival is None else [ev, rival]:
        matrix = e.metrics.get("confusion_matrix")
        classes = e.metrics.get("classes") or []
        if not matrix:
            continue
        top = max(max(r) for r in matrix) or 1
        head = "<tr><th>true \\ predicted</th>" + "".join(f"<th>{escape(c)}</th>" for c in classes) + "</tr>"
        rows = []
        for label, row in zip(classes, matrix, strict=False):
            cells = "".join(
                f"<td style='background:rgba(31,111,235,{0.08 + 0.6 * v / top:.2f})'>{v:,}</td>" for v in row
            )
            rows.append(f"<tr><th>{escape(label)}</th>{cells}</tr>")
        tables.append(figure(e.ref, f"<table>{head}{''.join(rows)}</table>"))
    return "<h2>Confusion matrix</h2><div class='charts'>" + "".join(tables) + "</div>"


def _explanations(ev: Evaluation) -> str:
    """The stored global importance as bars, and the summary plot of the explained sample."""
    found = ev.explanations
    if not found:
        return "<h2>Explanations</h2><p class='muted'>not computed (--no-explain)</p>"
    figures = []
    stored = found.get("registration") or {}
    if stored.get("importance"):
        title = f"Global importance at registration (mean |attribution|, {stored.get('method')})"
        figures.append(figure(title, importance_bars(stored["importance"])))
    else:
        figures.append(f"<p class='muted'>no stored importance: {escape(stored.get('error'))}</p>")
    if found.get("features"):
        output = found.get("output")
        title = (
            f"SHAP summary on {found.get('rows')} sampled row(s) ({found.get('method')}, "
            f"{found.get('space')}, output {output}; background from {found.get('background')})"
        )
        xlabel = f"attribution to the {found.get('space')} of {output}"
        figures.append(figure(title, beeswarm(found["features"], xlabel=xlabel)))
    elif found.get("error"):
        figures.append(f"<p class='fail'>the rows could not be explained: {escape(found['error'])}</p>")
    return "<h2>Explanations</h2><div class='charts'>" + "".join(figures) + "</div>"


def _slices(ev: Evaluation) -> str:
    if not ev.slices:
        return "<h2>Slices</h2><p class='muted'>no slices asked for (--slice FEATURE)</p>"
    names = (
        ("accuracy", "f1", "f1_macro", "roc_auc", "brier")
        if ev.task == "classification"
        else ("mae", "rmse", "r2")
    )
    out = ["<h2>Slices</h2>"]
    for key, entry in ev.slices.items():
        groups = entry.get("groups", [])
        shown = [n for n in names if any(n in g["metrics"] for g in groups)]
        key_metric = shown[0] if shown else None
        worst = None
        if key_metric is not None and groups:
            scored = [g for g in groups if isinstance(g["metrics"].get(key_metric), int | float)]
            if scored:
                pick = max if lower_is_better(key_metric) else min
                worst = pick(scored, key=lambda g: g["metrics"][key_metric])["value"]
        head = "<tr><th>group</th><th>rows</th>" + "".join(f"<th>{n}</th>" for n in shown) + "</tr>"
        rows = [
            f"<tr class='{'weak' if g['value'] == worst else ''}'><td>{escape(g['value'])}</td>"
            f"<td>{g['rows']:,}</td>"
            + "".join(f"<td>{number(g['metrics'].get(n))}</td>" for n in shown)
            + "</tr>"
            for g in groups
        ]
        out.append(
            f"<p><b>{escape(key)}</b> <span class='muted'>({escape(entry.get('kind'))}; "
            "the weakest group is shaded)</span></p>"
        )
        out.append(f"<table>{head}{''.join(rows)}</table>")
    return "".join(out)


def _fairness(ev: Evaluation) -> str:
    if not ev.fairness:
        return "<h2>Fairness</h2><p class='muted'>no sensitive features named (--sensitive FEATURE)</p>"
    out = ["<h2>Fairness</h2>"]
    for name, entry in ev.fairness.items():
        groups: Mapping[str, Mapping[str, Any]] = entry.get("groups", {})
        columns = [k for k in next(iter(groups.values()), {}) if k != "count"]
        head = (
            "<tr><th>group</th><th>count</th>" + "".join(f"<th>{escape(c)}</th>" for c in columns) + "</tr>"
        )
        rows = [
            f"<tr><td>{escape(g)}</td><td>{v.get('count', 0):,}</td>"
            + "".join(f"<td>{number(v.get(c))}</td>" for c in columns)
            + "</tr>"
            for g, v in groups.items()
        ]
        summary = ", ".join(
            f"{k.replace('_', ' ')} <b>{number(v)}</b>"
            for k, v in entry.items()
            if k not in ("groups", "positive")
        )
        positive = (
            f" (positive class {escape(entry['positive'])})" if entry.get("positive") is not None else ""
        )
        out.append(f"<p><b>{escape(name)}</b>{positive}: {summary}</p><table>{head}{''.join(rows)}</table>")
    return "".join(out)


def _robustness(ev: Evaluation, rival: Evaluation | None) -> str:
    if not ev.robustness:
        return "<h2>Robustness</h2><p class='muted'>not measured</p>"
    rows = []
    for e in [ev] if rival is None else [ev, rival]:
        r = e.robustness
        if not r:
            continue
        noise, swap, attack = r.get("noise", {}), r.get("swap", {}), r.get("attack", {})
        rows.append(
            f"<tr><td>{escape(e.ref)}</td>"
            f"<td>{number(noise.get('stability', noise.get('relative_change')))}</td>"
            f"<td>{number(swap.get('stability'))} {escape(swap.get('weakest', ''))}</td>"
            f"<td>{number(attack.get('success_rate'))}</td><td>{number(attack.get('median_queries'))}</td>"
            f"<td>{number(attack.get('sanitised_share'))}</td></tr>"
        )
    settings = ev.robustness.get("settings", {})
    return (
        "<h2>Robustness</h2>"
        f"<p class='muted'>noise: Gaussian, sd {settings.get('noise')} x each feature's spread on "
        f"{ev.robustness.get('rows')} rows; swaps: each categorical feature takes another allowed "
        f"category; attack: {escape(ev.robustness.get('attack', {}).get('method', ''))}, budget "
        f"eps {settings.get('eps')} x spread, {settings.get('queries')} queries per row. Inputs the "
        "contract rejects are counted as sanitised.</p>"
        "<table><tr><th>version</th><th>noise stability</th><th>swap stability (weakest)</th>"
        "<th>attack success rate</th><th>median queries</th><th>sanitised share</th></tr>"
        f"{''.join(rows)}</table>"
    )
