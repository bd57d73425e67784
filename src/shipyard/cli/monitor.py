"""`shipyard monitor ...` and `shipyard feedback ...`: drift and quality of served models, and labels."""

from __future__ import annotations

import json as json_lib
import logging
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from shipyard.cli.render import console, emit_json, error, table
from shipyard.cli.session import registry

if TYPE_CHECKING:
    from shipyard.evaluation.policy import Policy

__all__ = ["feedback_app", "monitor_app", "show_report"]

monitor_app = typer.Typer(help="Drift, performance and alerts of served models.", no_args_is_help=True)
feedback_app = typer.Typer(help="Labels that arrive after the prediction.", no_args_is_help=True)

WindowOpt = Annotated[str, typer.Option("--window", "-w", help="How far back: 15m, 6h, 1d, 2w.")]
SettingsOpt = Annotated[
    Path | None,
    typer.Option("--thresholds", help="Drift thresholds per feature (YAML); see docs/monitoring.md."),
]


@monitor_app.command("report")
def report(
    ref: Annotated[str, typer.Argument(help="NAME (the busiest version), NAME:VERSION or NAME@ALIAS.")],
    window: WindowOpt = "1d",
    since: Annotated[
        datetime | None,
        typer.Option(help="Start of the window (ISO time, UTC if no zone); overrides --window."),
    ] = None,
    until: Annotated[datetime | None, typer.Option(help="End of the window (default now).")] = None,
    buckets: Annotated[int, typer.Option(help="Points on the timeline.")] = 24,
    thresholds: SettingsOpt = None,
    html: Annotated[
        Path | None, typer.Option("--html", help="Write the self-contained HTML report here.")
    ] = None,
    json_out: Annotated[
        Path | None, typer.Option("--json-out", help="Write the report as JSON here.")
    ] = None,
    json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
) -> None:
    """Drift, prediction drift, performance on labels and the timeline of a window of the log."""
    from shipyard.core.durations import parse_duration
    from shipyard.monitoring.monitor import monitor_report
    from shipyard.monitoring.report import write_report
    from shipyard.monitoring.thresholds import DriftSettings
    from shipyard.store.files import atomic_path

    settings = DriftSettings.read(thresholds) if thresholds is not None else None
    with registry() as reg:
        result = monitor_report(
            reg,
            ref,
            since=_utc(since),
            until=_utc(until),
            window=parse_duration(window),
            buckets=buckets,
            settings=settings,
        )
    data = result.to_dict()
    if html is not None:
        write_report(data, html)
    if json_out is not None:
        with atomic_path(json_out) as tmp:
            Path(tmp).write_text(json_lib.dumps(data, indent=2))
    if json:
        emit_json(data)
        return
    show_report(data)
    for path in (html, json_out):
        if path is not None:
            console.print(f"wrote {path}")


@monitor_app.command("watch")
def watch(
    ref: Annotated[str, typer.Argument(help="NAME, NAME:VERSION or NAME@ALIAS.")],
    every: Annotated[str, typer.Option(help="How often to check: 30s, 5m, 1h.")] = "5m",
    window: WindowOpt = "1h",
    rule: Annotated[
        list[str] | None,
        typer.Option(
            "--rule",
            help="Alert rule (repeatable): feature_drift[:F], dataset_drift, prediction_drift, "
            "performance_drop[:METRIC[:DROP]], detector, error_rate[:SHARE], latency[:pNN[:MS]]. "
            "Default: all.",
        ),
    ] = None,
    alert: Annotated[
        list[str] | None,
        typer.Option("--alert", help="Where to send alerts: webhook=URL (repeatable); log always."),
    ] = None,
    on_drift: Annotated[
        str | None, typer.Option("--on-drift", help="Retraining command, run when an alert opens.")
    ] = None,
    command_timeout: Annotated[float, typer.Option(help="Seconds the retraining command may run.")] = 3600.0,
    promote: Annotated[
        str | None, typer.Option(help="Alias a retrained version moves to when it passes the gates.")
    ] = None,
    policy: Annotated[Path | None, typer.Option(help="Gates policy for retrained versions.")] = None,
    eval_data: Annotated[
        Path | None,
        typer.Option("--eval-data", help="Labelled rows the gates evaluate a retrained version on."),
    ] = None,
    target: Annotated[str | None, typer.Option(help="The label column of --eval-data.")] = None,
    sensitive: Annotated[
        str | None,
        typer.Option(
            "--sensitive", help="Sensitive features for the gates' fairness rules, comma-separated."
        ),
    ] = None,
    slices: Annotated[
        list[str] | None,
        typer.Option(
            "--slice",
            help="Evaluate by FEATURE, FEATURE:N bins or FEATURE:E1,E2 for the gates' slice rules "
            "(repeatable).",
        ),
    ] = None,
    thresholds: SettingsOpt = None,
    once: Annotated[bool, typer.Option("--once", help="Check once and exit (for cron).")] = False,
    checks: Annotated[int | None, typer.Option(help="Stop after this many checks.")] = None,
) -> None:
    """Check a model on a schedule; alert once per episode; retrain, gate and promote on drift.

    Exits 1 when a check failed (with --once or --checks), 2 when the options cannot work.
    """
    from shipyard.core.durations import parse_duration
    from shipyard.errors import MonitorConfigError
    from shipyard.monitoring.alerts import DEFAULT_RULES, Rule, Webhook
    from shipyard.monitoring.thresholds import DriftSettings
    from shipyard.monitoring.watch import Check, Watcher

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    rules = [Rule.parse(r) for r in (rule or DEFAULT_RULES)]
    hooks = []
    for target_text in alert or []:
        kind, _, url = target_text.partition("=")
        if kind != "webhook" or not url:
            raise MonitorConfigError(f"--alert {target_text!r}: expected webhook=URL")
        hooks.append(Webhook(url))
    if promote is not None and (eval_data is None or target is None):
        _usage("--promote needs --eval-data and --target, so the gates can evaluate the new version")
    if eval_data is not None and target is None:
        _usage("--eval-data needs --target, the label column the gates evaluate against")
    settings = DriftSettings.read(thresholds) if thresholds is not None else None
    extra: dict[str, Any] = {
        "sensitive": [s.strip() for s in (sensitive or "").split(",") if s.strip()],
        "slices": slices or [],
    }
    with registry() as reg:
        gates = _gates_policy(policy or reg.settings.gates_policy) if eval_data is not None else None

        def gate_and_promote(version: Any) -> dict[str, Any]:
            from shipyard.evaluation.gates import check_gates

            if eval_data is None or gates is None:
                return {"gates": "not checked (no --eval-data)", "promoted": False}
            result = check_gates(
                str(version.ref), gates, data=str(eval_data), target=target, registry=reg, **extra
            )
            out: dict[str, Any] = {"gates": "passed" if result.passed else "failed", "promoted": False}
            out["failed_rules"] = [str(r) for r in result.failed]
            if result.passed and promote:
                reg.aliases.set(version.ref, promote)
                out["promoted"] = True
                out["alias"] = promote
            return out

        watcher = Watcher(
            reg,
            ref,
            window=parse_duration(window),
            rules=rules,
            webhooks=hooks,
            command=on_drift,
            command_timeout=command_timeout,
            on_new_version=gate_and_promote,
            settings=settings,
        )

        def show(check: Check) -> None:
            r = check.report
            drifted = r.drift.drifted_features if r.drift else []
            console.print(
                f"[bold]{datetime.now().astimezone():%H:%M:%S}[/] {r.ref}: {r.requests} requests, "
                f"{len(drifted)} drifted feature(s), {len(check.firings)} condition(s) holding"
            )
            for a in check.opened:
                console.print(f"  [red]ALERT[/] {a.rule}: {a.detail.get('message', '')}")
            for a in check.resolved:
                console.print(f"  [green]resolved[/] {a.rule}")
            if check.retrain is not None:
                _show_retrain(check.retrain)

        failed = watcher.run(parse_duration(every), iterations=1 if once else checks, on_check=show)
    if failed:
        error(f"{failed} monitoring check(s) of {ref} failed; see the log above")
        raise typer.Exit(1)


@monitor_app.command("alerts")
def alerts(
    model: Annotated[str | None, typer.Argument(help="Only this model.")] = None,
    state: Annotated[str | None, typer.Option(help="firing or resolved.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many.")] = 50,
    json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Alert episodes, newest first."""
    from shipyard.monitoring.alerts import AlertBook

    with registry() as reg:
        found = AlertBook(reg).list(model=model, state=state, limit=limit)
    if json:
        emit_json([a.to_dict() for a in found])
        return
    rows = [
        [str(a.id), a.model, a.rule, a.state, a.opened_at.strftime("%Y-%m-%d %H:%M"), str(a.checks),
         str(a.detail.get("message", ""))[:80]]
        for a in found
    ]  # fmt: skip
    table("alerts", ["id", "model", "rule", "state", "opened", "checks", "message"], rows)


@feedback_app.command("load")
def load(
    path: Annotated[Path, typer.Argument(help="Labels: .csv, .parquet or .jsonl.")],
    id_column: Annotated[str, typer.Option(help="The column of request ids.")] = "request_id",
    label_column: Annotated[str, typer.Option(help="The column of labels.")] = "label",
    row_column: Annotated[
        str | None, typer.Option(help="The column of row numbers within a request (default: row 0).")
    ] = None,
    skip_bad: Annotated[
        bool,
        typer.Option("--skip-bad", help="Store the good rows and list the bad ones (default: store none)."),
    ] = False,
    lookback: Annotated[
        str, typer.Option(help="How far back the prediction log is searched for the requests: 30d, 12w.")
    ] = "30d",
) -> None:
    """Store labels for served requests in one transaction; every bad row is listed, and then none
    is stored unless --skip-bad."""
    from shipyard.core.durations import parse_duration
    from shipyard.monitoring.events import find_requests
    from shipyard.monitoring.feedback import FeedbackStore, LabelCheck, labels_from_batch, refusal
    from shipyard.store.tabular import read_rows

    back = parse_duration(lookback)
    data = read_rows(path)
    labels, refused = labels_from_batch(
        data, id_column=id_column, label_column=label_column, row_column=row_column, source=str(path)
    )
    with registry() as reg:
        store_url, cipher = reg.settings.store_url, reg.artifacts.cipher
        check = LabelCheck(
            reg.meta,
            find=lambda ids: find_requests(store_url, ids, lookback=back, cipher=cipher),
            lookback=back,
        )
        good, bad = check.check(labels)
        refused = sorted([*refused, *bad], key=lambda r: int(r.where.split()[-1]))
        if refused and not skip_bad:
            raise refusal(refused, total=data.n_rows, source=str(path))
        stored = FeedbackStore(reg).add(good, source=str(path))
    console.print(f"stored {stored} label(s) from {path}")
    if refused:
        console.print(f"[yellow]skipped {len(refused)} row(s)[/] that cannot be used:")
        for r in refused:
            console.print(f"  {r}", markup=False, highlight=False)


def show_report(data: dict[str, Any]) -> None:
    """Print a monitoring report as tables."""
    console.print(
        f"[bold]{data['ref']}[/] {data['since'][:19]} .. {data['until'][:19]}: {data['requests']} requests, "
        f"{data['rows']} rows, {data['rejected']} rejected"
    )
    drift = data.get("drift")
    if drift is None:
        console.print("no drift: the version has no reference profile")
    else:
        console.print(_headline(drift))
        rows = [
            [c["name"], c["level"], _n(c["stats"].get("psi")), _n(c["stats"].get("ks")),
             _n(c["stats"].get("wasserstein_norm")), _n(c["stats"].get("js")), "; ".join(c["reasons"])[:70]]
            for c in drift["features"] + drift["outputs"]
        ]  # fmt: skip
        table("drift (most severe first)", ["column", "level", "PSI", "KS", "W/std", "JS", "why"], rows)
    aside = data.get("set_aside") or {}
    for reason in aside.get("reasons", []):
        examples = ", ".join(str(e) for e in reason["examples"])
        console.print(
            f"set aside {reason['labels']} label(s) that cannot be used: {reason['reason']} "
            f"(e.g. {examples})",
            markup=False,
            style="yellow",
        )
    perf = data.get("performance")
    if perf:
        rows = [
            [k, _n(v), _n(perf["baseline"].get(k)), _n(perf["change"].get(k)),
             f"[{_n(perf['ci'].get(k, {}).get('low'))}, {_n(perf['ci'].get(k, {}).get('high'))}]"]
            for k, v in perf["metrics"].items()
        ]  # fmt: skip
        title = f"performance on {perf['rows']} labelled rows ({perf['labelled_share']:.0%} of served)"
        table(title, ["metric", "now", "evaluation", "change", "95% CI"], rows)
    else:
        console.print("no labels have arrived for this window yet")
    if data.get("estimate"):
        est = data["estimate"]
        console.print(
            f"estimated accuracy without labels: {est['accuracy']:.3f} on {est['rows']} rows "
            f"({est['method']})"
        )
    for d in data.get("detections", []):
        console.print(f"[yellow]{d['detector']}[/] signalled {d['kind']} at {d['time'][:19]}")


def _headline(drift: dict[str, Any]) -> str:
    """The drift headline, red when anything drifted: what drifted is named before any verdict."""
    from rich.markup import escape

    features = [c for c in drift["features"] if c["level"] == "drift"]
    outputs = [c for c in drift["outputs"] if c["level"] == "drift"]
    warned = any(c["level"] == "warn" for c in drift["features"] + drift["outputs"])
    text = escape(drift.get("headline") or "")
    if features or outputs:
        return f"[bold red]{text}[/]"
    if text.startswith("not judged"):
        return f"[dim]{text}[/]"
    return f"[yellow]{text}[/]" if warned else f"[green]{text}[/]"


def _gates_policy(source: Path | None) -> Policy:
    """The policy retrained versions are gated by, read before the watch starts (exit 2 if none):
    a version the command registers must never be left ungated for want of a policy."""
    from shipyard.errors import PolicyError
    from shipyard.evaluation.policy import Policy

    if source is None:
        _usage(
            "gating a retrained version needs a policy: pass --policy gates.yaml or set "
            "SHIPYARD_GATES_POLICY (see docs/evaluation.md)"
        )
    try:
        return Policy.read(source)
    except PolicyError as exc:
        _usage(f"the gates policy cannot be used: {exc}")


def _usage(message: str) -> NoReturn:
    error(message)
    raise typer.Exit(2)


def _show_retrain(retrain: dict[str, Any]) -> None:
    if "error" in retrain:
        console.print(f"  retrain: {retrain['error']}", markup=False)
        return
    line = f"  retrain: exit {retrain.get('exit_code')} in {retrain.get('seconds')}s"
    if retrain.get("new_version") is None:
        console.print(f"{line}, no new version registered", markup=False)
        return
    console.print(f"{line}, registered version {retrain['new_version']}", markup=False)
    promotion = retrain.get("promotion") or {}
    if "error" in promotion:
        console.print(f"  gates could not be checked: {promotion['error']}", markup=False)
    elif promotion:
        moved = f", moved to {promotion['alias']}" if promotion.get("promoted") else ", not promoted"
        console.print(f"  gates {promotion.get('gates')}{moved}", markup=False)
        for text in promotion.get("failed_rules", []):
            console.print(f"    failed: {text}", markup=False)


def _n(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    from datetime import UTC

    return value.replace(tzinfo=UTC) if value.tzinfo is None else value
