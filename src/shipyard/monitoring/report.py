"""The monitoring report: one self-contained HTML file (inline CSS and SVG, no script runs, no network).

It shows a window's summary, the drift of every feature and model output with reference-vs-current
histograms, performance over time against the evaluation baseline (with the label-free estimate
and the DDM/ADWIN signals), latency and error rate over time, and the timeline as a table. The
input is `MonitorReport.to_dict()`, embedded whole as JSON
(`<script type="application/json" id="shipyard-monitor">`).
"""

from __future__ import annotations

import html
import json
import math
import os
import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shipyard.core.metric_table import is_worse, primary_metric
from shipyard.store.files import atomic_path

__all__ = ["render_report", "write_report"]

_REFERENCE, _CURRENT = "#1f6feb", "#d97706"
_SIGNAL = "#cf222e"
_SMALL = "font-size='10' text-anchor='end'"
_HALO = "stroke='#fff' stroke-width='3' paint-order='stroke'"  # text stays legible over lines
_MAX_BARS = 20  # categories beyond this are summed into one 'other' bar
_STYLE = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1100px;
color:#1c2128;padding:0 1rem}
h1{font-size:1.5rem;margin-bottom:.2rem}h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #d0d7de;
padding-bottom:.3rem}.muted{color:#57606a}table{border-collapse:collapse;margin:.5rem 0}
td,th{border:1px solid #d0d7de;padding:.25rem .6rem;text-align:right;vertical-align:top}th{background:#f6f8fa}
td{white-space:nowrap}td:first-child,th:first-child,td.when,.summary th{text-align:left}
td.text{text-align:left;white-space:normal}td.why{min-width:12rem}.small{font-size:12px}
.pass{color:#1a7f37;font-weight:600}.fail{color:#cf222e;font-weight:600}svg{max-width:100%;height:auto}
.charts{display:flex;flex-wrap:wrap;gap:1.2rem}figure{margin:0}figcaption{font-weight:600;margin-bottom:.2rem}
.legend span{margin-right:1rem}.badge{display:inline-block;padding:0 .5rem;border-radius:1rem;color:#fff;
font-size:12px;font-weight:600}.drift{background:#cf222e}.warn{background:#d97706}.ok{background:#1a7f37}
.insufficient,.ignored{background:#8c959f}
"""


def write_report(report: Mapping[str, Any], path: str | os.PathLike[str]) -> Path:
    """Write the HTML report of `MonitorReport.to_dict()` via a temporary name and a rename."""
    file = Path(path)
    text = render_report(report)
    with atomic_path(file) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return file


def render_report(report: Mapping[str, Any]) -> str:
    """The self-contained HTML report of `MonitorReport.to_dict()`."""
    r, drift = report, report.get("drift")
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>Monitoring of {_e(r.get('ref'))}</title><style>{_STYLE}</style></head><body>",
        f"<h1>Monitoring of {_e(r.get('ref'))}</h1>",
        _summary(r),
    ]
    for title, body in (
        ("Data drift", _drift(drift, "features", "feature")),
        ("Prediction drift", _drift(drift, "outputs", "output")),
        ("Performance over time", _performance(r)),
        ("Latency and errors over time", _operations(r)),
        ("Timeline", _timeline(r)),
    ):
        parts += [f"<h2>{title}</h2>", body]
    payload = json.dumps(r, default=_jsonable)
    # Markup characters as JSON escapes: data can never close or open a tag inside the block.
    payload = payload.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    parts.append(f'<script type="application/json" id="shipyard-monitor">{payload}</script></body></html>')
    return "\n".join(parts)


# -- summary ------------------------------------------------------------------------------------------
def _summary(r: Mapping[str, Any]) -> str:
    since, until = _time(r.get("since")), _time(r.get("until"))
    head = (
        f"<p class='muted'>{_e(r.get('task'))} model &middot; window {_e(since)} &rarr; {_e(until)} UTC"
        f" &middot; {len(r.get('timeline') or [])} bucket(s) &middot; report took "
        f"{_n(r.get('seconds'), '.2f')} s</p>"
    )
    requests, rejected = int(r.get("requests") or 0), int(r.get("rejected") or 0)
    rows = {
        "requests": f"{requests:,}" + ("" if requests else " <span class='muted'>(no traffic)</span>"),
        "rows served": _n(r.get("rows")),
        "rejected": f"{rejected:,}" + (f" ({_pct(rejected / requests)})" if requests else ""),
        "drift": "<span class='muted'>not measured: no reference profile</span>",
    }
    if drift := r.get("drift"):
        named = drift.get("drifted_features")
        # What drifted comes first: a feature can drift while the data set as a whole does not.
        anything = bool(named) or bool(drift.get("prediction_drift"))
        badge = _badge("drift", "DRIFT") if anything else _badge("ok", "no drift")
        rows["drift"] = f"{badge} {_e(str(drift.get('headline') or ''))}"
        verdict = _badge("drift", "DRIFT") if drift.get("dataset_drift") else _badge("ok", "below threshold")
        weighted = "weighted by importance" if drift.get("weighted") else "unweighted"
        which = f": {_e(', '.join(map(str, named)))}" if isinstance(named, list) and named else ""
        rows["dataset drift"] = (
            f"{verdict} {_pct(drift.get('share'))} of features drifted ({weighted}){which}"
        )
        yes = drift.get("prediction_drift")
        rows["prediction drift"] = _badge("drift", "yes") if yes else _badge("ok", "no")
    detections = r.get("detections") or []
    counts = Counter(str(d.get("detector")) for d in detections)
    which = f" ({_e(', '.join(f'{k} {v}' for k, v in counts.items()))})" if counts else ""
    rows["detector signals"] = f"{len(detections)}{which}"
    rows["performance vs evaluation"] = _change(r.get("performance"))
    aside = r.get("set_aside") or {}
    if aside.get("labels"):
        reasons = "; ".join(f"{x.get('labels')} {x.get('reason')}" for x in aside.get("reasons") or [])
        rows["labels set aside"] = _e(f"{aside['labels']} ({reasons})")
    if estimate := r.get("estimate"):
        rows["estimated accuracy"] = (
            f"{_n(estimate.get('accuracy'))} on {_n(estimate.get('rows'))} unlabelled row(s) "
            f"<span class='muted'>({_e(estimate.get('method'))})</span>"
        )
    if versions := r.get("versions"):
        rows["rows per version"] = ", ".join(f"v{_e(k)}: {_n(v)}" for k, v in versions.items())
    body = "".join(f"<tr><th>{k}</th><td class='text'>{v}</td></tr>" for k, v in rows.items())
    return f"{head}\n<table class='summary'>{body}</table>"


def _change(perf: Mapping[str, Any] | None) -> str:
    if perf is None:
        return "<span class='muted'>no labels yet: performance is unknown</span>"
    metrics, baseline = perf.get("metrics") or {}, perf.get("baseline") or {}
    change = perf.get("change") or {}
    labelled = f"on {_n(perf.get('rows'))} labelled row(s) ({_pct(perf.get('labelled_share'))} of served)"
    if not change:
        shown = ", ".join(f"{_e(k)} {_n(v)}" for k, v in list(metrics.items())[:3])
        return f"{shown} {labelled} <span class='muted'>&middot; no evaluation baseline to compare</span>"
    parts = [
        f"{_e(k)} {_n(metrics.get(k))} {_delta(k, v)} <span class='muted'>(baseline {_n(baseline[k])})</span>"
        for k, v in list(change.items())[:4]
        if k in baseline
    ]
    return "; ".join(parts) + f" {labelled}"


def _delta(metric: str, change: Any) -> str:
    """A change against the baseline, red when it is for the worse."""
    if not _num(change) or not change:
        return _n(change, "+.4f")
    worse = is_worse(metric, change)
    return f"<span class='{'fail' if worse else 'pass'}'>{change:+.4f}</span>"


# -- drift --------------------------------------------------------------------------------------------
def _drift(drift: Mapping[str, Any] | None, key: str, role: str) -> str:
    if drift is None:
        return "<p class='muted'>not measured: the version has no reference profile</p>"
    columns: Sequence[Mapping[str, Any]] = drift.get(key) or []
    if not columns:
        return f"<p class='muted'>no model {role}s were compared</p>"
    out = []
    if key == "features":
        defaults = (drift.get("settings") or {}).get("defaults") or {}
        limits = " &middot; ".join(f"{_e(k)} {_e(v)}" for k, v in defaults.items() if v is not False)
        out.append(
            f"<p class='muted'>reference {_n(drift.get('reference_rows'))} rows, current "
            f"{_n(drift.get('current_rows'))} rows; most severe first. Thresholds: {limits}</p>"
        )
    out.append(_drift_table(columns, role))
    out.append(
        f"<p class='legend small'><span style='color:{_REFERENCE}'>&#9632; reference</span>"
        f"<span style='color:{_CURRENT}'>&#9632; current</span></p><div class='charts'>"
    )
    out += [
        f"<figure><figcaption>{_e(c.get('name'))} {_badge(str(c.get('level')))}</figcaption>"
        f"{_histogram(c)}</figure>"
        for c in columns
    ]
    out.append("</div>")
    return "\n".join(out)


def _drift_table(columns: Sequence[Mapping[str, Any]], role: str) -> str:
    weights = any(c.get("importance") is not None for c in columns)
    head = (
        f"<tr><th>{role}</th><th>kind</th><th>level</th><th>PSI</th><th>KS</th><th>Wasserstein "
        "(/ std)</th><th>JS</th><th>chi-square p</th><th>missing before &rarr; after</th><th>unseen</th>"
        + ("<th>importance</th>" if weights else "")
        + "<th>reasons</th></tr>"
    )
    rows = []
    for c in columns:
        s = c.get("stats") or {}
        ks = _n(s.get("ks"))
        if s.get("ks") is not None and s.get("ks_exact") is False and s.get("ks_upper") is not None:
            ks = f"[{ks}, {_n(s.get('ks_upper'))}]"
        unseen: Mapping[str, Any] = c.get("unseen") or {}
        top = sorted(unseen, key=lambda k: -(unseen[k] or 0))[:5]
        shown = ", ".join(f"{_e(k)} ({_n(unseen[k])})" for k in top)
        if len(unseen) > len(top):
            shown += f", +{len(unseen) - len(top)} more"
        if unseen and s.get("unseen_share") is not None:
            shown = f"{_pct(s.get('unseen_share'))}: {shown}"
        rows.append(
            f"<tr><td>{_e(c.get('name'))}</td><td class='text'>{_e(c.get('kind'))}</td>"
            f"<td class='text'>{_badge(str(c.get('level')))}</td><td>{_n(s.get('psi'))}</td>"
            f"<td>{ks}</td><td>{_n(s.get('wasserstein_norm'))}</td><td>{_n(s.get('js'))}</td>"
            f"<td>{_p(s.get('chi2_p'))}</td>"
            f"<td>{_pct(s.get('missing_reference'))} &rarr; {_pct(s.get('missing_current'))}</td>"
            f"<td class='text'>{shown}</td>"
            + (f"<td>{_n(c.get('importance'))}</td>" if weights else "")
            + f"<td class='text why'>{_e('; '.join(map(str, c.get('reasons') or [])))}</td></tr>"
        )
    return f"<table class='small'>{head}{''.join(rows)}</table>"


def _histogram(column: Mapping[str, Any]) -> str:
    bins = column.get("bins") or {}
    ref = [float(v) if _num(v) else 0.0 for v in bins.get("reference") or []]
    cur = [float(v) if _num(v) else 0.0 for v in bins.get("current") or []]
    if not ref or len(ref) != len(cur):
        return "<p class='muted small'>no histogram: no rows on one side</p>"
    numeric = "edges" in bins
    edges = [float(e) for e in bins.get("edges") or []]
    if numeric:
        bounds = ["-inf", *(_short(e) for e in edges), "inf"][: len(ref) + 1]
        labels = [f"[{bounds[i]}, {bounds[i + 1]})" for i in range(len(ref))]
    else:
        labels = [str(x) for x in bins.get("labels") or []][: len(ref)]
        labels, ref, cur = _cap(labels, ref, cur)
    w, h, left, bottom, top = 330, 170, 34, 46, 8
    step = (w - left - 6) / len(ref)
    peak = max(*ref, *cur, 1e-9)

    def y(v: float) -> float:
        return h - bottom - v / peak * (h - bottom - top)

    axis = f"<line x1='{left}' y1='{h - bottom}' x2='{w - 6}' y2='{h - bottom}' stroke='#8c959f'/>"
    out = [_svg(w, h), axis]
    out += [f"<text x='{left - 3}' y='{y(v) + 3:.1f}' {_SMALL}>{_pct(v)}</text>" for v in (0.0, peak)]
    bar = max(step * 0.4, 1.0)
    for i, (label, a, b) in enumerate(zip(labels, ref, cur, strict=False)):
        x0 = left + i * step + step * 0.1
        tip = f"<title>{_e(label)}: reference {_pct(a)}, current {_pct(b)}</title>"
        for x, v, color in ((x0, a, _REFERENCE), (x0 + bar, b, _CURRENT)):
            out.append(
                f"<rect x='{x:.1f}' y='{y(v):.1f}' width='{bar:.1f}' height='{h - bottom - y(v):.1f}' "
                f"fill='{color}'>{tip}</rect>"
            )
        if not numeric:
            text = label if len(label) <= 10 else label[:9] + "\u2026"
            out.append(_tick(left + (i + 0.5) * step, h - bottom + 10, text))
    if numeric:
        for i, edge in enumerate(edges[: len(ref) - 1], start=1):
            out.append(_tick(left + i * step, h - bottom + 10, _short(edge)))
    out.append("</svg>")
    return "".join(out)


def _cap(labels: list[str], ref: list[float], cur: list[float]) -> tuple[list[str], list[float], list[float]]:
    """At most `_MAX_BARS` bars: the largest categories in their order, the rest summed as 'other'."""
    if len(labels) <= _MAX_BARS:
        return labels, ref, cur
    keep = set(sorted(range(len(labels)), key=lambda i: -max(ref[i], cur[i]))[: _MAX_BARS - 1])
    rest = [i for i in range(len(labels)) if i not in keep]
    kept = sorted(keep)
    return (
        [labels[i] for i in kept] + [f"other ({len(rest)})"],
        [ref[i] for i in kept] + [sum(ref[i] for i in rest)],
        [cur[i] for i in kept] + [sum(cur[i] for i in rest)],
    )


# -- performance and operations -----------------------------------------------------------------------
def _performance(r: Mapping[str, Any]) -> str:
    perf: Mapping[str, Any] | None = r.get("performance")
    timeline: Sequence[Mapping[str, Any]] = r.get("timeline") or []
    metric = _headline_metric(r)
    out = []
    if perf is None:
        out.append("<p class='muted'>no labels have arrived for this window yet: performance is unknown</p>")
    else:
        metrics, ci, baseline = perf.get("metrics") or {}, perf.get("ci") or {}, perf.get("baseline") or {}
        change = perf.get("change") or {}
        rows = "".join(
            f"<tr><td>{_e(k)}</td><td>{_n(v)}</td><td>{_interval(ci.get(k))}</td>"
            f"<td>{_n(baseline.get(k))}</td><td>{_delta(k, change.get(k))}</td></tr>"
            for k, v in metrics.items()
        )
        out.append(
            f"<p class='muted'>{_n(perf.get('rows'))} labelled row(s), {_pct(perf.get('labelled_share'))} of "
            "the rows served; baseline: the version's latest evaluation"
            + ("" if baseline else " (none recorded)")
            + "</p><table><tr><th>metric</th><th>value</th><th>95% interval</th><th>baseline</th>"
            f"<th>change</th></tr>{rows}</table>"
        )
    detections = r.get("detections") or []
    if detections:
        rows = "".join(
            f"<tr><td>{_e(d.get('detector'))}</td><td class='text'>{_e(d.get('kind'))}</td>"
            f"<td class='when'>{_e(_time(d.get('time')))}</td><td>{_n(d.get('index'))}</td>"
            f"<td>{_n(d.get('bucket'))}</td></tr>"
            for d in detections
        )
        out.append(
            "<table><tr><th>detector</th><th>signal</th><th>time</th><th>labelled row</th>"
            f"<th>bucket</th></tr>{rows}</table>"
        )
    series = [_Series(metric, [_metric(t, metric) for t in timeline], _REFERENCE)]
    if metric == "accuracy":
        estimates = [t.get("estimated_accuracy") for t in timeline]
        if any(_num(v) for v in estimates):
            series.append(_Series("estimate", estimates, "#8250df", "2 3"))
    band = ([_metric(t, metric, "low") for t in timeline], [_metric(t, metric, "high") for t in timeline])
    markers: dict[int, list[str]] = {}
    for d in detections:
        if isinstance(d.get("bucket"), int):
            name = str(d.get("detector")) + ("" if d.get("kind") in (None, "drift") else f" {d['kind']}")
            markers.setdefault(d["bucket"], []).append(name)
    baseline = ((perf or {}).get("baseline") or {}).get(metric)
    if any(_num(v) for s in series for v in s.values):
        labels, shown = _labels(timeline), {i: ", ".join(dict.fromkeys(v)) for i, v in markers.items()}
        chart = _time_chart(
            labels, series, band=band, baseline=baseline if _num(baseline) else None, markers=shown
        )
        out.append(_figure(f"{metric} per bucket", chart))
    return "\n".join(out)


def _headline_metric(r: Mapping[str, Any]) -> str:
    """Accuracy for classifiers, MAE for regressors; else the first metric the data has."""
    wanted = primary_metric(str(r.get("task")))
    found = [
        m for t in (r, *(r.get("timeline") or [])) for m in (t.get("performance") or {}).get("metrics") or {}
    ]
    return wanted if wanted in found or not found else found[0]


def _metric(entry: Mapping[str, Any], metric: str, side: str | None = None) -> Any:
    """A bucket's value of `metric`, or with `side` ('low', 'high') a bound of its interval."""
    perf = entry.get("performance") or {}
    if side is None:
        return (perf.get("metrics") or {}).get(metric)
    return ((perf.get("ci") or {}).get(metric) or {}).get(side)


def _operations(r: Mapping[str, Any]) -> str:
    timeline: Sequence[Mapping[str, Any]] = r.get("timeline") or []
    latency = [t.get("latency_ms") or {} for t in timeline]
    colors = {"p50": _REFERENCE, "p95": _CURRENT, "p99": _SIGNAL}
    series = [_Series(q, [x.get(q) for x in latency], color) for q, color in colors.items()]
    errors = [_Series("error rate", [t.get("error_rate") for t in timeline], _SIGNAL)]
    latency_chart = _time_chart(_labels(timeline), series, zero=True, w=530)
    errors_chart = _time_chart(_labels(timeline), errors, zero=True, w=530, fmt=_pct)
    return (
        f"<div class='charts'>{_figure('latency (ms) of answered requests', latency_chart)}"
        f"{_figure('error rate (rejected / requests)', errors_chart)}</div>"
    )


def _timeline(r: Mapping[str, Any]) -> str:
    timeline: Sequence[Mapping[str, Any]] = r.get("timeline") or []
    if not timeline:
        return "<p class='muted'>no buckets</p>"
    metric = _headline_metric(r)
    head = (
        "<tr><th>bucket</th><th>start</th><th>requests</th><th>rows</th><th>errors</th><th>error rate</th>"
        "<th>p50 ms</th><th>p95 ms</th><th>p99 ms</th><th>drift share</th><th>drifted features</th>"
        f"<th>max PSI</th><th>labelled</th><th>{_e(metric)}</th><th>estimated accuracy</th></tr>"
    )
    rows = []
    for i, t in enumerate(timeline):
        lat = t.get("latency_ms") or {}
        drifted = t.get("drifted_features")
        names = ", ".join(map(str, drifted)) if isinstance(drifted, list) else drifted
        rows.append(
            f"<tr><td>{i}</td><td class='when'>{_e(_time(t.get('start')))}</td>"
            f"<td>{_n(t.get('requests'))}</td>"
            f"<td>{_n(t.get('rows'))}</td><td>{_n(t.get('errors'))}</td><td>{_pct(t.get('error_rate'))}</td>"
            + "".join(f"<td>{_n(lat.get(q), '.1f')}</td>" for q in ("p50", "p95", "p99"))
            + f"<td>{_pct(t.get('drift_share'))}</td><td class='text'>{_e(names or '')}</td>"
            f"<td>{_n(t.get('max_psi'))}</td><td>{_n((t.get('performance') or {}).get('rows'))}</td>"
            f"<td>{_n(_metric(t, metric))}</td><td>{_n(t.get('estimated_accuracy'))}</td></tr>"
        )
    return f"<table class='small'>{head}{''.join(rows)}</table>"


# -- charts -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Series:
    name: str
    values: Sequence[Any]  # a number, or None for a bucket without data (drawn as a gap)
    color: str
    dash: str = ""


def _time_chart(
    labels: Sequence[str],
    series: Sequence[_Series],
    *,
    band: tuple[Sequence[Any], Sequence[Any]] | None = None,
    baseline: float | None = None,
    markers: Mapping[int, str] | None = None,
    zero: bool = False,
    w: int = 1060,
    fmt: Callable[[Any], str] | None = None,
) -> str:
    """A line per series over the buckets; gaps where a bucket has no value."""
    fmt = fmt or _short
    values = [float(v) for s in series for v in s.values if _num(v)]
    values += [float(v) for v in (*band[0], *band[1]) if _num(v)] if band else []
    if not values:
        return "<p class='muted'>no data in this window</p>"
    values += [baseline] if baseline is not None else []
    lo, hi = min([*values, 0.0] if zero else values), max(values)
    if hi == lo:
        hi, lo = hi + (abs(hi) * 0.1 or 1.0), lo if zero else lo - (abs(lo) * 0.1 or 1.0)
    ticks = _ticks(lo, hi)
    lo, hi = ticks[0], ticks[-1]
    h, left, right, top, bottom = 240, 52, 12, 30, 34
    n = max(len(labels), 1)

    def x(i: int) -> float:
        return left + (i + 0.5) * (w - left - right) / n

    def y(v: Any) -> float:
        return top + (hi - float(v)) / (hi - lo) * (h - top - bottom)

    out = [_svg(w, h)]
    for v in ticks:
        out.append(f"<line x1='{left}' y1='{y(v):.1f}' x2='{w - right}' y2='{y(v):.1f}' stroke='#eaeef2'/>")
        out.append(f"<text x='{left - 4}' y='{y(v) + 3:.1f}' {_SMALL}>{fmt(v)}</text>")
    every = math.ceil(n / 10)
    for i, label in enumerate(labels):
        if i % every == 0:
            out.append(f"<text x='{x(i):.1f}' y='{h - bottom + 14}' font-size='10' text-anchor='middle'>")
            out.append(f"{_e(label)}</text>")
    legend: list[tuple[str, str, str]] = [(s.name, s.color, s.dash) for s in series]
    if band:
        for run in _runs([(a, b) if _num(a) and _num(b) else None for a, b in zip(*band, strict=False)]):
            upper = " ".join(f"{x(i):.1f},{y(v[1]):.1f}" for i, v in run)
            lower = " ".join(f"{x(i):.1f},{y(v[0]):.1f}" for i, v in reversed(run))
            out.append(f"<polygon points='{upper} {lower}' fill='{_REFERENCE}' fill-opacity='.15' ")
            out.append(f"stroke='{_REFERENCE}' stroke-opacity='.3'/>")
        legend.append(("95% interval", "#a5c8f5", ""))
    if baseline is not None:
        out.append(f"<line x1='{left}' y1='{y(baseline):.1f}' x2='{w - right}' y2='{y(baseline):.1f}' ")
        out.append("stroke='#57606a' stroke-dasharray='6 4'/>")
        legend.append((f"baseline {_short(baseline)}", "#57606a", "6 4"))
    for i, text in (markers or {}).items():
        if 0 <= i < n:
            out.append(f"<line x1='{x(i):.1f}' y1='{top}' x2='{x(i):.1f}' y2='{h - bottom}' ")
            out.append(f"stroke='{_SIGNAL}' stroke-dasharray='3 3'/><text x='{x(i) + 3:.1f}' y='{top + 10}' ")
            out.append(f"font-size='10' fill='{_SIGNAL}' {_HALO}>{_e(text)}</text>")
    for s in series:
        for run in _runs([v if _num(v) else None for v in s.values]):
            points = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in run)
            dash = f" stroke-dasharray='{s.dash}'" if s.dash else ""
            out.append(f"<polyline fill='none' stroke='{s.color}' stroke-width='2'{dash} points='{points}'/>")
            out += [
                f"<circle cx='{x(i):.1f}' cy='{y(v):.1f}' r='2.5' fill='{s.color}'>"
                f"<title>{_e(s.name)} {_e(labels[i] if i < len(labels) else i)}: {fmt(v)}</title></circle>"
                for i, v in run
            ]
    at = left
    for name, color, dash in legend:
        stroke = f" stroke-dasharray='{dash}'" if dash else ""
        out.append(f"<line x1='{at}' y1='12' x2='{at + 22}' y2='12' stroke='{color}' stroke-width='3'")
        out.append(f"{stroke}/>")
        out.append(f"<text x='{at + 26}' y='16' font-size='11'>{_e(name)}</text>")
        at += 40 + 7 * len(name)
    out.append("</svg>")
    return "".join(out)


def _ticks(lo: float, hi: float) -> list[float]:
    """Round tick values (steps of 1, 2, 2.5 or 5 times a power of ten) that cover [lo, hi]."""
    raw = (hi - lo) / 4
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw * (1 - 1e-9))
    first = math.floor(lo / step + 1e-9)
    count = math.ceil(hi / step - 1e-9) - first
    return [round((first + k) * step, 12) for k in range(count + 1)]


def _runs(values: Sequence[Any]) -> list[list[tuple[int, Any]]]:
    """The stretches of consecutive buckets that have a value."""
    runs: list[list[tuple[int, Any]]] = []
    for i, v in enumerate(values):
        if v is None:
            continue
        if runs and runs[-1][-1][0] == i - 1:
            runs[-1].append((i, v))
        else:
            runs.append([(i, v)])
    return runs


def _labels(timeline: Sequence[Mapping[str, Any]]) -> list[str]:
    starts = [_time(t.get("start")) for t in timeline]
    if not all(re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d", s) for s in starts):
        return starts
    one_day = len({s[:10] for s in starts}) == 1
    return [s[11:] if one_day else s[5:] for s in starts]


def _svg(w: int, h: int) -> str:
    return (
        f"<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 {w} {h}' width='{w}' height='{h}' role='img'>"
    )


def _tick(x: float, y: float, text: str) -> str:
    return (
        f"<text x='{x:.1f}' y='{y:.1f}' font-size='9' text-anchor='end' "
        f"transform='rotate(-40 {x:.1f} {y:.1f})'>{_e(text)}</text>"
    )


def _figure(title: str, body: str) -> str:
    return f"<figure><figcaption>{_e(title)}</figcaption>{body}</figure>"


# -- formatting -----------------------------------------------------------------------------------------
def _badge(level: str, text: str | None = None) -> str:
    return f"<span class='badge {_e(level)}'>{_e(text or level)}</span>"


def _interval(ci: Mapping[str, Any] | None) -> str:
    return f"[{_n(ci.get('low'))}, {_n(ci.get('high'))}]" if ci else ""


def _time(value: Any) -> str:
    """An ISO time as `YYYY-MM-DD HH:MM`, or the text as it came."""
    try:
        when = datetime.fromisoformat(str(value))
        return (when.astimezone(UTC) if when.tzinfo else when).strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return "" if value is None else str(value)


def _num(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _n(value: Any, spec: str = ".4f") -> str:
    if value is None:
        return "&ndash;"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int) and spec == ".4f":
        return f"{value:,}"
    if isinstance(value, int | float):
        return "nan" if math.isnan(value) else format(value, spec)
    return _e(value)


def _p(value: Any) -> str:
    return f"{value:.1e}" if _num(value) and 0 < value < 1e-4 else _n(value)


def _pct(value: Any) -> str:
    return f"{100 * value:.1f}%" if _num(value) else "&ndash;"


def _short(value: Any) -> str:
    """A number in at most four or so characters: 0.123, 42.5, 1.94k, 12.3M."""
    v = float(value)
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= scale:
            return f"{v / scale:.3g}{suffix}"
    return f"{v:.3g}"


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _jsonable(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else str(value)
