"""The evaluation report: one self-contained HTML file (inline CSS and SVG, no script, no network).

It shows the headline metrics with their confidence intervals, ROC and precision-recall curves,
the reliability diagram, confusion matrices, slices, fairness, robustness and the gate results,
with the champion beside the challenger when there is one. The same numbers are embedded as JSON
(`<script type="application/json" id="shipyard-evaluation">`) and `report_json` gives them alone.
"""

from __future__ import annotations

import html
import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from shipyard.core.metric_table import headline_metrics, lower_is_better
from shipyard.evaluation.gates import GateResult
from shipyard.evaluation.result import Evaluation
from shipyard.store.files import atomic_path

__all__ = ["render_report", "report_json", "write_report"]

_COLORS = ("#1f6feb", "#d97706")
_STYLE = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1100px;
color:#1c2128;padding:0 1rem}
h1{font-size:1.5rem;margin-bottom:.2rem}h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #d0d7de;
padding-bottom:.3rem}.muted{color:#57606a}table{border-collapse:collapse;margin:.5rem 0}
td,th{border:1px solid #d0d7de;padding:.25rem .6rem;text-align:right}th{background:#f6f8fa}
td:first-child,th:first-child{text-align:left}.pass{color:#1a7f37;font-weight:600}
.fail{color:#cf222e;font-weight:600}.weak{background:#fff1e5}.charts{display:flex;flex-wrap:wrap;gap:1.5rem}
figure{margin:0}figcaption{font-weight:600;margin-bottom:.3rem}.legend span{margin-right:1rem}
.badge{display:inline-block;padding:.1rem .5rem;border-radius:1rem;color:#fff}
.badge.pass{background:#1a7f37}.badge.fail{background:#cf222e}
"""


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
        text = json.dumps(report_json(evaluation, gates), indent=2, default=_jsonable)
    else:
        text = render_report(evaluation, gates)
    with atomic_path(file) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return file


def render_report(evaluation: Evaluation, gates: GateResult | None = None) -> str:
    """The self-contained HTML report."""
    ev = evaluation
    rival = ev.champion
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>Evaluation of {_e(ev.ref)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>Evaluation of {_e(ev.ref)}</h1>",
        _summary(ev),
    ]
    if gates is not None:
        parts.append(_gates(gates))
    parts.append(_headline(ev, rival))
    if ev.task == "classification":
        parts.append(_charts(ev, rival))
        parts.append(_confusions(ev, rival))
    parts.append(_slices(ev))
    parts.append(_fairness(ev))
    parts.append(_robustness(ev, rival))
    payload = json.dumps(report_json(ev, gates), default=_jsonable)
    # Markup characters as JSON escapes: data can never close or open a tag inside the block.
    payload = payload.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    parts.append(f"<script type='application/json' id='shipyard-evaluation'>{payload}</script>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _summary(ev: Evaluation) -> str:
    data = ev.data
    rejected = int(data.get("rejected", 0))
    lines = [
        f"<p class='muted'>{_e(ev.task)} model &middot; data {_e(data.get('source'))} &middot; "
        f"{int(data.get('evaluated', 0)):,} row(s) evaluated"
        + (f", <b>{rejected:,} rejected by the contract</b>" if rejected else "")
        + f" &middot; target {_e(data.get('target'))} &middot; {_e(ev.created_at)} &middot; "
        f"{ev.seconds:.1f} s</p>"
    ]
    if ev.champion is not None:
        lines.append(
            f"<p class='legend'><span style='color:{_COLORS[0]}'>&#9632; challenger {_e(ev.ref)}</span>"
            f"<span style='color:{_COLORS[1]}'>&#9632; champion {_e(ev.champion.ref)} "
            f"({_e(ev.champion_alias)})</span></p>"
        )
    elif ev.champion_error:
        lines.append(f"<p class='fail'>{_e(ev.champion_error)}</p>")
    for violation in data.get("violations", []):
        lines.append(f"<p class='muted'>rejected: {_e(violation)}</p>")
    return "\n".join(lines)


def _gates(gates: GateResult) -> str:
    verdict = "pass" if gates.passed else "fail"
    rows = []
    for r in gates.results:
        status = "pass" if r.passed else "fail"
        rows.append(
            f"<tr><td>{_e(r.rule.text)}</td><td>{_n(r.value)}</td><td>{_n(r.limit)}</td>"
            f"<td>{_n(r.champion)}</td><td class='{status}'>{status}</td><td>{_e(r.reason)}</td></tr>"
        )
    notes = "".join(f"<p class='muted'>{_e(n)}</p>" for n in gates.notes)
    return (
        f"<h2>Gates <span class='badge {verdict}'>{verdict.upper()}</span></h2>"
        f"<p class='muted'>policy {_e(gates.policy.source)}, champion alias {_e(gates.alias)} "
        f"({_e(gates.champion or 'none')})</p>{notes}"
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
        row = f"<tr><td>{name}</td><td>{_n(mine)}</td><td>{_interval(ev, name)}</td>"
        if rival is not None:
            theirs = rival.metrics.get(name)
            row += f"<td>{_n(theirs)}</td><td>{_interval(rival, name)}</td>"
            if isinstance(theirs, int | float):
                better = (mine < theirs) if lower_is_better(name) else (mine > theirs)
                css = "pass" if better else ("fail" if mine != theirs else "")
                row += f"<td class='{css}'>{mine - theirs:+.4f}</td>"
            else:
                row += "<td></td>"
        rows.append(row + "</tr>")
    return f"<h2>Metrics</h2><table>{''.join(rows)}</table>"


def _interval(ev: Evaluation, name: str) -> str:
    ci = ev.confidence.get(name)
    if not ci:
        return ""
    return f"[{_n(ci['low'])}, {_n(ci['high'])}]"


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
                series.append((name, curve[x], curve[y], _COLORS[j]))
        if series:
            figures.append(_figure(title, _line_chart(series, x, y, diagonal)))
    series = []
    for j, e in enumerate(both):
        curve = e.metrics.get("reliability_uniform")
        if curve and curve.get("confidence"):
            series.append((e.ref, curve["confidence"], curve["observed"], _COLORS[j]))
    if series:
        bins = ev.metrics.get("reliability_uniform", {}).get("bins")
        title = f"Reliability diagram ({bins} uniform bins)"
        figures.append(_figure(title, _line_chart(series, "mean confidence", "observed", "up", dots=True)))
    return "<h2>Curves</h2><div class='charts'>" + "".join(figures) + "</div>"


def _figure(title: str, svg: str) -> str:
    return f"<figure><figcaption>{_e(title)}</figcaption>{svg}</figure>"


def _line_chart(
    series: Sequence[tuple[str, Sequence[float], Sequence[float], str]],
    xlabel: str,
    ylabel: str,
    diagonal: str | None,
    *,
    dots: bool = False,
) -> str:
    w, h, pad = 320, 260, 36

    def sx(v: float) -> float:
        return pad + float(v) * (w - pad - 10)

    def sy(v: float) -> float:
        return h - pad - float(v) * (h - pad - 10)

    out = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{w}' height='{h}' role='img'>"]
    out.append(
        f"<rect x='{pad}' y='10' width='{w - pad - 10}' height='{h - pad - 10}' fill='none' "
        "stroke='#d0d7de'/>"
    )
    for t in (0.0, 0.5, 1.0):
        out.append(
            f"<text x='{sx(t):.0f}' y='{h - pad + 14}' font-size='10' text-anchor='middle'>{t:g}</text>"
        )
        out.append(f"<text x='{pad - 4}' y='{sy(t) + 3:.0f}' font-size='10' text-anchor='end'>{t:g}</text>")
    out.append(
        f"<text x='{(w + pad) / 2:.0f}' y='{h - 4}' font-size='11' text-anchor='middle'>{_e(xlabel)}</text>"
    )
    out.append(
        f"<text x='10' y='{(h - pad) / 2:.0f}' font-size='11' text-anchor='middle' "
        f"transform='rotate(-90 10 {(h - pad) / 2:.0f})'>{_e(ylabel)}</text>"
    )
    if diagonal:
        out.append(
            f"<line x1='{sx(0):.1f}' y1='{sy(0):.1f}' x2='{sx(1):.1f}' y2='{sy(1):.1f}' "
            "stroke='#8c959f' stroke-dasharray='4 3'/>"
        )
    for name, xs, ys, color in series:
        points = " ".join(f"{sx(a):.1f},{sy(b):.1f}" for a, b in zip(xs, ys, strict=False))
        out.append(
            f"<polyline fill='none' stroke='{color}' stroke-width='2' points='{points}'>"
            f"<title>{_e(name)}</title></polyline>"
        )
        if dots:
            out += [
                f"<circle cx='{sx(a):.1f}' cy='{sy(b):.1f}' r='3' fill='{color}'/>"
                for a, b in zip(xs, ys, strict=False)
            ]
    out.append("</svg>")
    return "".join(out)


def _confusions(ev: Evaluation, rival: Evaluation | None) -> str:
    tables = []
    for e in [ev] if rival is None else [ev, rival]:
        matrix = e.metrics.get("confusion_matrix")
        classes = e.metrics.get("classes") or []
        if not matrix:
            continue
        top = max(max(r) for r in matrix) or 1
        head = "<tr><th>true \\ predicted</th>" + "".join(f"<th>{_e(c)}</th>" for c in classes) + "</tr>"
        rows = []
        for label, row in zip(classes, matrix, strict=False):
            cells = "".join(
                f"<td style='background:rgba(31,111,235,{0.08 + 0.6 * v / top:.2f})'>{v:,}</td>" for v in row
            )
            rows.append(f"<tr><th>{_e(label)}</th>{cells}</tr>")
        tables.append(_figure(e.ref, f"<table>{head}{''.join(rows)}</table>"))
    return "<h2>Confusion matrix</h2><div class='charts'>" + "".join(tables) + "</div>"


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
            f"<tr class='{'weak' if g['value'] == worst else ''}'><td>{_e(g['value'])}</td>"
            f"<td>{g['rows']:,}</td>"
            + "".join(f"<td>{_n(g['metrics'].get(n))}</td>" for n in shown)
            + "</tr>"
            for g in groups
        ]
        out.append(
            f"<p><b>{_e(key)}</b> <span class='muted'>({_e(entry.get('kind'))}; "
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
        head = "<tr><th>group</th><th>count</th>" + "".join(f"<th>{_e(c)}</th>" for c in columns) + "</tr>"
        rows = [
            f"<tr><td>{_e(g)}</td><td>{v.get('count', 0):,}</td>"
            + "".join(f"<td>{_n(v.get(c))}</td>" for c in columns)
            + "</tr>"
            for g, v in groups.items()
        ]
        summary = ", ".join(
            f"{k.replace('_', ' ')} <b>{_n(v)}</b>"
            for k, v in entry.items()
            if k not in ("groups", "positive")
        )
        positive = f" (positive class {_e(entry['positive'])})" if entry.get("positive") is not None else ""
        out.append(f"<p><b>{_e(name)}</b>{positive}: {summary}</p><table>{head}{''.join(rows)}</table>")
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
            f"<tr><td>{_e(e.ref)}</td><td>{_n(noise.get('stability', noise.get('relative_change')))}</td>"
            f"<td>{_n(swap.get('stability'))} {_e(swap.get('weakest', ''))}</td>"
            f"<td>{_n(attack.get('success_rate'))}</td><td>{_n(attack.get('median_queries'))}</td>"
            f"<td>{_n(attack.get('sanitised_share'))}</td></tr>"
        )
    settings = ev.robustness.get("settings", {})
    return (
        "<h2>Robustness</h2>"
        f"<p class='muted'>noise: Gaussian, sd {settings.get('noise')} x each feature's spread on "
        f"{ev.robustness.get('rows')} rows; swaps: each categorical feature takes another allowed "
        f"category; attack: {_e(ev.robustness.get('attack', {}).get('method', ''))}, budget "
        f"eps {settings.get('eps')} x spread, {settings.get('queries')} queries per row. Inputs the "
        "contract rejects are counted as sanitised.</p>"
        "<table><tr><th>version</th><th>noise stability</th><th>swap stability (weakest)</th>"
        "<th>attack success rate</th><th>median queries</th><th>sanitised share</th></tr>"
        f"{''.join(rows)}</table>"
    )


def _n(value: Any) -> str:
    if value is None:
        return "&ndash;"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4f}"
    return _e(value)


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _jsonable(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else str(value)
