"""The monitoring report: one self-contained HTML file (inline CSS and SVG, no script runs, no network).

It shows a window's summary, the drift of every feature and model output with reference-vs-current
histograms, performance over time against the evaluation baseline (with the label-free estimate
and the DDM/ADWIN signals), latency and error rate over time, and the timeline as a table. The
input is `MonitorReport.to_dict()`, embedded whole as JSON
(`<script type="application/json" id="shipyard-monitor">`).
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from shipyard.core.html_kit import (
    COLORS,
    SIGNAL_COLOR,
    SMALL_TEXT,
    badge,
    document,
    escape,
    figure,
    interval,
    is_number,
    json_script,
    number,
    p_value,
    percent,
    short,
    svg_open,
    tick_label,
    when,
)
from shipyard.core.metric_table import is_worse, primary_metric
from shipyard.core.svg_charts import Series, time_chart
from shipyard.store.files import atomic_path

__all__ = ["render_report", "write_report"]

_MAX_BARS = 20  # categories beyond this are summed into one 'other' bar
_STYLE = """
td,th{vertical-align:top}td{white-space:nowrap}td.when,.summary th{text-align:left}
td.text{text-align:left;white-space:normal}td.why{min-width:12rem}.small{font-size:12px}
svg{max-width:100%;height:auto}.charts{gap:1.2rem}figcaption{margin-bottom:.2rem}
.badge{padding:0 .5rem;font-size:12px;font-weight:600}.drift{background:#cf222e}.warn{background:#d97706}
.ok{background:#1a7f37}.insufficient,.ignored{background:#8c959f}
"""
"""The report's own rules, after the kit's base style."""


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
    parts = [_summary(r)]
    for title, body in (
        ("Data drift", _drift(drift, "features", "feature")),
        ("Prediction drift", _drift(drift, "outputs", "output")),
        ("Performance over time", _performance(r)),
        ("Latency and errors over time", _operations(r)),
        ("Timeline", _timeline(r)),
    ):
        parts += [f"<h2>{title}</h2>", body]
    parts.append(json_script("shipyard-monitor", r))
    ref = r.get("ref")
    return document(f"Monitoring of {'' if ref is None else ref}", _STYLE, parts)


# -- summary ------------------------------------------------------------------------------------------
def _summary(r: Mapping[str, Any]) -> str:
    since, until = when(r.get("since")), when(r.get("until"))
    head = (
        f"<p class='muted'>{escape(r.get('task'))} model &middot; window {escape(since)} &rarr; "
        f"{escape(until)} UTC"
        f" &middot; {len(r.get('timeline') or [])} bucket(s) &middot; report took "
        f"{number(r.get('seconds'), '.2f')} s</p>"
    )
    requests, rejected = int(r.get("requests") or 0), int(r.get("rejected") or 0)
    rows = {
        "requests": f"{requests:,}" + ("" if requests else " <span class='muted'>(no traffic)</span>"),
        "rows served": number(r.get("rows")),
        "rejected": f"{rejected:,}" + (f" ({percent(rejected / requests)})" if requests else ""),
        "drift": "<span class='muted'>not measured: no reference profile</span>",
    }
    if drift := r.get("drift"):
        named = drift.get("drifted_features")
        # What drifted comes first: a feature can drift while the data set as a whole does not.
        anything = bool(named) or bool(drift.get("prediction_drift"))
        verdict = badge("drift", "DRIFT") if anything else badge("ok", "no drift")
        rows["drift"] = f"{verdict} {escape(str(drift.get('headline') or ''))}"
        verdict = badge("drift", "DRIFT") if drift.get("dataset_drift") else badge("ok", "below threshold")
        weighted = "weighted by importance" if drift.get("weighted") else "unweighted"
        about = r.get("importance") or {}
        if drift.get("weighted") and about.get("source") == "registration":
            weighted += f" at registration, {about.get('method')}"
        elif about.get("note"):  # why it is unweighted
            weighted = str(about["note"])
        weighted = escape(weighted)
        which = f": {escape(', '.join(map(str, named)))}" if isinstance(named, list) and named else ""
        rows["dataset drift"] = (
            f"{verdict} {percent(drift.get('share'))} of features drifted ({weighted}){which}"
        )
        yes = drift.get("prediction_drift")
        rows["prediction drift"] = badge("drift", "yes") if yes else badge("ok", "no")
    detections = r.get("detections") or []
    counts = Counter(str(d.get("detector")) for d in detections)
    which = f" ({escape(', '.join(f'{k} {v}' for k, v in counts.items()))})" if counts else ""
    rows["detector signals"] = f"{len(detections)}{which}"
    rows["performance vs evaluation"] = _change(r.get("performance"))
    aside = r.get("set_aside") or {}
    if aside.get("labels"):
        reasons = "; ".join(f"{x.get('labels')} {x.get('reason')}" for x in aside.get("reasons") or [])
        rows["labels set aside"] = escape(f"{aside['labels']} ({reasons})")
    if estimate := r.get("estimate"):
        rows["estimated accuracy"] = (
            f"{number(estimate.get('accuracy'))} on {number(estimate.get('rows'))} unlabelled row(s) "
            f"<span class='muted'>({escape(estimate.get('method'))})</span>"
        )
    if versions := r.get("versions"):
        rows["rows per version"] = ", ".join(f"v{escape(k)}: {number(v)}" for k, v in versions.items())
    body = "".join(f"<tr><th>{k}</th><td class='text'>{v}</td></tr>" for k, v in rows.items())
    return f"{head}\n<table class='summary'>{body}</table>"


def _change(perf: Mapping[str, Any] | None) -> str:
    if perf is None:
        return "<span class='muted'>no labels yet: performance is unknown</span>"
    metrics, baseline = perf.get("metrics") or {}, perf.get("baseline") or {}
    change = perf.get("change") or {}
    share = percent(perf.get("labelled_share"))
    labelled = f"on {number(perf.get('rows'))} labelled row(s) ({share} of served)"
    if not change:
        shown = ", ".join(f"{escape(k)} {number(v)}" for k, v in list(metrics.items())[:3])
        return f"{shown} {labelled} <span class='muted'>&middot; no evaluation baseline to compare</span>"
    parts = [
        f"{escape(k)} {number(metrics.get(k))} {_delta(k, v)} "
        f"<span class='muted'>(baseline {number(baseline[k])})</span>"
        for k, v in list(change.items())[:4]
        if k in baseline
    ]
    return "; ".join(parts) + f" {labelled}"


def _delta(metric: str, change: Any) -> str:
    """A change against the baseline, red when it is for the worse."""
    if not is_number(change) or not change:
        return number(change, "+.4f")
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
        limits = " &middot; ".join(f"{escape(k)} {escape(v)}" for k, v in defaults.items() if v is not False)
        out.append(
            f"<p class='muted'>reference {number(drift.get('reference_rows'))} rows, current "
            f"{number(drift.get('current_rows'))} rows; most severe first. Thresholds: {limits}</p>"
        )
    out.append(_drift_table(columns, role))
    out.append(
        f"<p class='legend small'><span style='color:{COLORS[0]}'>&#9632; reference</span>"
        f"<span style='color:{COLORS[1]}'>&#9632; current</span></p><div class='charts'>"
    )
    out += [
        f"<figure><figcaption>{escape(c.get('name'))} {badge(str(c.get('level')))}</figcaption>"
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
        ks = number(s.get("ks"))
        if s.get("ks") is not None and s.get("ks_exact") is False and s.get("ks_upper") is not None:
            ks = f"[{ks}, {number(s.get('ks_upper'))}]"
        unseen: Mapping[str, Any] = c.get("unseen") or {}
        top = sorted(unseen, key=lambda k: -(unseen[k] or 0))[:5]
        shown = ", ".join(f"{escape(k)} ({number(unseen[k])})" for k in top)
        if len(unseen) > len(top):
            shown += f", +{len(unseen) - len(top)} more"
        if unseen and s.get("unseen_share") is not None:
            shown = f"{percent(s.get('unseen_share'))}: {shown}"
        rows.append(
            f"<tr><td>{escape(c.get('name'))}</td><td class='text'>{escape(c.get('kind'))}</td>"
            f"<td class='text'>{badge(str(c.get('level')))}</td><td>{number(s.get('psi'))}</td>"
            f"<td>{ks}</td><td>{number(s.get('wasserstein_norm'))}</td><td>{number(s.get('js'))}</td>"
            f"<td>{p_value(s.get('chi2_p'))}</td>"
            f"<td>{percent(s.get('missing_reference'))} &rarr; {percent(s.get('missing_current'))}</td>"
            f"<td class='text'>{shown}</td>"
            + (f"<td>{number(c.get('importance'))}</td>" if weights else "")
            + f"<td class='text why'>{escape('; '.join(map(str, c.get('reasons') or [])))}</td></tr>"
        )
    return f"<table class='small'>{head}{''.join(rows)}</table>"


def _histogram(column: Mapping[str, Any]) -> str:
    bins = column.get("bins") or {}
    ref = [float(v) if is_number(v) else 0.0 for v in bins.get("reference") or []]
    cur = [float(v) if is_number(v) else 0.0 for v in bins.get("current") or []]
    if not ref or len(ref) != len(cur):
        return "<p class='muted small'>no histogram: no rows on one side</p>"
    numeric = "edges" in bins
    edges = [float(e) for e in bins.get("edges") or []]
    if numeric:
        bounds = ["-inf", *(short(e) for e in edges), "inf"][: len(ref) + 1]
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
    out = [svg_open(w, h), axis]
    out += [f"<text x='{left - 3}' y='{y(v) + 3:.1f}' {SMALL_TEXT}>{percent(v)}</text>" for v in (0.0, peak)]
    bar = max(step * 0.4, 1.0)
    for i, (label, a, b) in enumerate(zip(labels, ref, cur, strict=False)):
        x0 = left + i * step + step * 0.1
        tip = f"<title>{escape(label)}: reference {percent(a)}, current {percent(b)}</title>"
        for x, v, color in ((x0, a, COLORS[0]), (x0 + bar, b, COLORS[1])):
            out.append(
                f"<rect x='{x:.1f}' y='{y(v):.1f}' width='{bar:.1f}' height='{h - bottom - y(v):.1f}' "
                f"fill='{color}'>{tip}</rect>"
            )
        if not numeric:
            text = label if len(label) <= 10 else label[:9] + "\u2026"
            out.append(tick_label(left + (i + 0.5) * step, h - bottom + 10, text))
    if numeric:
        for i, edge in enumerate(edges[: len(ref) - 1], start=1):
            out.append(tick_label(left + i * step, h - bottom + 10, short(edge)))
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
            f"<tr><td>{escape(k)}</td><td>{number(v)}</td><td>{interval(ci.get(k))}</td>"
            f"<td>{number(baseline.get(k))}</td><td>{_delta(k, change.get(k))}</td></tr>"
            for k, v in metrics.items()
        )
        out.append(
            f"<p class='muted'>{number(perf.get('rows'))} labelled row(s), "
            f"{percent(perf.get('labelled_share'))} of "
            "the rows served; baseline: the version's latest evaluation"
            + ("" if baseline else " (none recorded)")
            + "</p><table><tr><th>metric</th><th>value</th><th>95% interval</th><th>baseline</th>"
            f"<th>change</th></tr>{rows}</table>"
        )
    detections = r.get("detections") or []
    if detections:
        rows = "".join(
            f"<tr><td>{escape(d.get('detector'))}</td><td class='text'>{escape(d.get('kind'))}</td>"
            f"<td class='when'>{escape(when(d.get('time')))}</td><td>{number(d.get('index'))}</td>"
            f"<td>{number(d.get('bucket'))}</td></tr>"
            for d in detections
        )
        out.append(
            "<table><tr><th>detector</th><th>signal</th><th>time</th><th>labelled row</th>"
            f"<th>bucket</th></tr>{rows}</table>"
        )
    series = [Series(metric, [_metric(t, metric) for t in timeline], COLORS[0])]
    if metric == "accuracy":
        estimates = [t.get("estimated_accuracy") for t in timeline]
        if any(is_number(v) for v in estimates):
            series.append(Series("estimate", estimates, "#8250df", "2 3"))
    band = ([_metric(t, metric, "low") for t in timeline], [_metric(t, metric, "high") for t in timeline])
    markers: dict[int, list[str]] = {}
    for d in detections:
        if isinstance(d.get("bucket"), int):
            name = str(d.get("detector")) + ("" if d.get("kind") in (None, "drift") else f" {d['kind']}")
            markers.setdefault(d["bucket"], []).append(name)
    baseline = ((perf or {}).get("baseline") or {}).get(metric)
    if any(is_number(v) for s in series for v in s.values):
        labels, shown = _labels(timeline), {i: ", ".join(dict.fromkeys(v)) for i, v in markers.items()}
        chart = time_chart(
            labels, series, band=band, baseline=baseline if is_number(baseline) else None, markers=shown
        )
        out.append(figure(f"{metric} per bucket", chart))
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
    colors = {"p50": COLORS[0], "p95": COLORS[1], "p99": SIGNAL_COLOR}
    series = [Series(q, [x.get(q) for x in latency], color) for q, color in colors.items()]
    errors = [Series("error rate", [t.get("error_rate") for t in timeline], SIGNAL_COLOR)]
    latency_chart = time_chart(_labels(timeline), series, zero=True, w=530)
    errors_chart = time_chart(_labels(timeline), errors, zero=True, w=530, fmt=percent)
    return (
        f"<div class='charts'>{figure('latency (ms) of answered requests', latency_chart)}"
        f"{figure('error rate (rejected / requests)', errors_chart)}</div>"
    )


def _timeline(r: Mapping[str, Any]) -> str:
    timeline: Sequence[Mapping[str, Any]] = r.get("timeline") or []
    if not timeline:
        return "<p class='muted'>no buckets</p>"
    metric = _headline_metric(r)
    head = (
        "<tr><th>bucket</th><th>start</th><th>requests</th><th>rows</th><th>errors</th><th>error rate</th>"
        "<th>p50 ms</th><th>p95 ms</th><th>p99 ms</th><th>drift share</th><th>drifted features</th>"
        f"<th>max PSI</th><th>labelled</th><th>{escape(metric)}</th><th>estimated accuracy</th></tr>"
    )
    rows = []
    for i, t in enumerate(timeline):
        lat = t.get("latency_ms") or {}
        drifted = t.get("drifted_features")
        names = ", ".join(map(str, drifted)) if isinstance(drifted, list) else drifted
        rows.append(
            f"<tr><td>{i}</td><td class='when'>{escape(when(t.get('start')))}</td>"
            f"<td>{number(t.get('requests'))}</td>"
            f"<td>{number(t.get('rows'))}</td><td>{number(t.get('errors'))}</td><td>{percent(t.get('error_rate'))}</td>"
            + "".join(f"<td>{number(lat.get(q), '.1f')}</td>" for q in ("p50", "p95", "p99"))
            + f"<td>{percent(t.get('drift_share'))}</td><td class='text'>{escape(names or '')}</td>"
            f"<td>{number(t.get('max_psi'))}</td><td>{number((t.get('performance') or {}).get('rows'))}</td>"
            f"<td>{number(_metric(t, metric))}</td><td>{number(t.get('estimated_accuracy'))}</td></tr>"
        )
    return f"<table class='small'>{head}{''.join(rows)}</table>"


# -- charts -------------------------------------------------------------------------------------------
def _labels(timeline: Sequence[Mapping[str, Any]]) -> list[str]:
    starts = [when(t.get("start")) for t in timeline]
    if not all(re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d", s) for s in starts):
        return starts
    one_day = len({s[:10] for s in starts}) == 1
    return [s[11:] if one_day else s[5:] for s in starts]
