"""`shipyard deploy`, `shipyard rollout` and `shipyard server`: deployments, rollouts, the controller."""

from __future__ import annotations

import json
import logging
import signal
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from shipyard.cli.options import JsonOpt
from shipyard.cli.render import console, emit_json, key_values, table
from shipyard.cli.session import registry
from shipyard.core.durations import parse_duration
from shipyard.errors import ConfigError, RolloutError

if TYPE_CHECKING:  # the commands import what they use, so the CLI starts without SciPy
    from shipyard.rollout.analysis import Verdict
    from shipyard.rollout.deployments import Deployment
    from shipyard.rollout.rollouts import HistoryEntry, Rollout

__all__ = ["deploy_app", "rollout_app", "server"]

deploy_app = typer.Typer(
    help="Deployments: named endpoints with stable, canary and shadow arms.", no_args_is_help=True
)
rollout_app = typer.Typer(
    help="Roll a new version out to a deployment: canary, blue/green or shadow, analysed step by step.",
    no_args_is_help=True,
)

Name = Annotated[str, typer.Argument(help="The deployment's name.")]
Reason = Annotated[str, typer.Option(help="Why, for the history and the audit trail.")]


# -- deployments ---------------------------------------------------------------------------------
@deploy_app.command("create")
def deploy_create(
    name: Name,
    model: Annotated[
        str, typer.Option(help="What it serves: NAME@ALIAS (a promotion moves the alias) or NAME:VERSION.")
    ],
    sticky: Annotated[
        str | None,
        typer.Option(help="Routing key: header:NAME (default header:X-Shipyard-Key) or feature:NAME."),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Create a deployment with one stable arm: the version MODEL names now."""
    from shipyard.rollout.deployments import Deployments

    with registry() as reg:
        created = Deployments(reg).create(name, model, sticky=sticky)
    if json_out:
        emit_json(created.to_dict())
        return
    console.print(
        f"deployment [bold]{created.name}[/] serves {created.model}:{created.stable.version}"
        f"{' (follows @' + created.alias + ')' if created.alias else ''}; "
        f"serve it with 'shipyard serve --deployment {created.name}'"
    )


@deploy_app.command("list")
def deploy_list(json_out: JsonOpt = False) -> None:
    """List deployments and their arms."""
    from shipyard.rollout.deployments import Deployments
    from shipyard.rollout.rollouts import Rollouts

    with registry() as reg:
        found = Deployments(reg).list()
        running = {r.deployment: r for r in Rollouts(reg).active()}
    if json_out:
        emit_json([d.to_dict() for d in found])
        return
    if not found:
        console.print("no deployments; create one with 'shipyard deploy create NAME --model REF'")
        return
    table(
        None,
        ["name", "model", "arms", "rollout", "updated"],
        [
            (
                d.name,
                d.model + (f"@{d.alias}" if d.alias else ""),
                _arms(d),
                _short(running[d.name]) if d.name in running else "-",
                f"{d.updated_at:%Y-%m-%d %H:%M:%S}",
            )
            for d in found
        ],
    )


@deploy_app.command("show")
def deploy_show(name: Name, json_out: JsonOpt = False) -> None:
    """Show a deployment: its arms, routing key and rollout."""
    from shipyard.rollout.deployments import Deployments
    from shipyard.rollout.rollouts import Rollouts

    with registry() as reg:
        found = Deployments(reg).get(name)
        current = Rollouts(reg).current(name)
    if json_out:
        emit_json(found.to_dict() | {"rollout": current.to_dict() if current else None})
        return
    _show_deployment(found, current)


@deploy_app.command("delete")
def deploy_delete(name: Name) -> None:
    """Delete a deployment (refused while a rollout runs on it)."""
    from shipyard.rollout.deployments import Deployments

    with registry() as reg:
        Deployments(reg).delete(name)
    console.print(f"deleted deployment {name}")


# -- rollouts ------------------------------------------------------------------------------------
@rollout_app.command("start")
def rollout_start(
    name: Name,
    to: Annotated[str, typer.Option(help="The version to roll out: NAME:VERSION or NAME@ALIAS.")],
    strategy: Annotated[str, typer.Option(help="canary, blue-green or shadow.")] = "canary",
    steps: Annotated[str, typer.Option(help="Canary weights in percent, rising to 100.")] = "5,25,50,100",
    interval: Annotated[
        str, typer.Option(help="How long each canary step (or the blue/green preview) lasts at least.")
    ] = "2m",
    duration: Annotated[str, typer.Option(help="How long a shadow is analysed.")] = "1h",
    keep_warm: Annotated[
        str, typer.Option(help="How long blue/green keeps the old version warm after the switch.")
    ] = "10m",
    shadow_share: Annotated[float, typer.Option(help="Percent of requests copied to a shadow.")] = 100.0,
    preview_checks: Annotated[
        Path | None,
        typer.Option(help="JSON Lines of rows a blue/green preview sends first; each must be answered."),
    ] = None,
    min_requests: Annotated[
        int | None, typer.Option(help="Requests each arm needs before a verdict (default 100).")
    ] = None,
    rules: Annotated[
        Path | None, typer.Option(help="A JSON or YAML file of analysis thresholds (see docs/rollouts.md).")
    ] = None,
    no_promote_alias: Annotated[
        bool, typer.Option("--no-promote-alias", help="Leave the deployment's alias where it is.")
    ] = False,
    reason: Reason = "",
    json_out: JsonOpt = False,
) -> None:
    """Start rolling a version out; the controller (in `serve --deployment` or `server`) moves it."""
    from shipyard.rollout.deployments import Deployments
    from shipyard.rollout.plan import STRATEGIES, AnalysisRules, Plan, parse_steps
    from shipyard.rollout.rollouts import Rollouts

    if strategy not in STRATEGIES:
        raise RolloutError(f"--strategy is {strategy!r}; expected one of {', '.join(STRATEGIES)}")
    thresholds = _rules(rules)
    if min_requests is not None:
        thresholds["min_requests"] = min_requests
    plan = Plan(
        strategy=strategy,
        steps=parse_steps(steps) if strategy == "canary" else (5.0, 25.0, 50.0, 100.0),
        interval=parse_duration(interval, what="--interval").total_seconds(),
        duration=parse_duration(duration, what="--duration").total_seconds(),
        keep_warm=parse_duration(keep_warm, what="--keep-warm").total_seconds(),
        shadow_share=shadow_share,
        preview=tuple(_preview_rows(preview_checks)) if preview_checks is not None else (),
        promote_alias=not no_promote_alias,
        rules=AnalysisRules.from_dict(thresholds),
    )
    with registry() as reg:
        started = Rollouts(reg).start(name, to, plan, reason=reason)
        found = Deployments(reg).get(name)
    if json_out:
        emit_json(started.to_dict())
        return
    console.print(
        f"rollout {started.id}: {found.model}:{started.version} to {name} by {strategy}, "
        f"now {started.phase}; arms {_arms(found)}"
    )


@rollout_app.command("status")
def rollout_status(
    name: Name,
    watch: Annotated[bool, typer.Option("--watch", help="Redraw until the rollout finishes.")] = False,
    every: Annotated[float, typer.Option(help="Seconds between redraws with --watch.")] = 2.0,
    json_out: JsonOpt = False,
) -> None:
    """Show the deployment's rollout: state, step, arms, the latest verdict and the analysis now."""
    from shipyard.rollout.controller import step_verdict
    from shipyard.rollout.deployments import Deployments
    from shipyard.rollout.rollouts import Rollouts

    while True:
        with registry() as reg:
            found = Deployments(reg).get(name)
            rollouts = Rollouts(reg)
            current = rollouts.current(name)
            history = rollouts.history(name, limit=20)
            analysing = current is not None and current.active and current.phase != "preview"
            now, why = None, ""
            if analysing and current is not None:
                try:
                    now = step_verdict(reg, current)
                except Exception as exc:  # the command you need when a rollout cannot be judged
                    why = f"{type(exc).__name__}: {exc}"
        if json_out:
            verdict = _latest_verdict(history, current)
            emit_json(
                {
                    "deployment": found.to_dict(),
                    "rollout": current.to_dict() if current else None,
                    "latest_verdict": verdict.to_dict() if verdict else None,
                    "analysis_now": now.to_dict() if now else None,
                    "analysis_error": why or None,
                }
            )
        else:
            if watch:
                console.clear()
            _show_deployment(found, current, history, now)
            if why:
                console.print(f"the step cannot be analysed now: {why}", markup=False, highlight=False)
        if not watch or current is None or not current.active:
            return
        time.sleep(every)


@rollout_app.command("wait")
def rollout_wait(
    name: Name,
    timeout: Annotated[str, typer.Option(help="How long to wait at most (e.g. 30m, 2h).")] = "1h",
    every: Annotated[float, typer.Option(help="Seconds between looks at the rollout.")] = 5.0,
) -> None:
    """Wait for the deployment's rollout to finish; exit 1 unless it was promoted (or a shadow passed).

    For a CI job: a rollback, an abort or the timeout fails it.
    """
    from shipyard.rollout.rollouts import Rollouts

    limit = parse_duration(timeout, what="--timeout").total_seconds()
    deadline = time.monotonic() + limit
    while True:
        with registry() as reg:
            current = Rollouts(reg).current(name)
        if current is None:
            raise RolloutError(f"no rollout has run on {name!r}; start one with 'shipyard rollout start'")
        if not current.active:
            break
        if time.monotonic() >= deadline:
            raise RolloutError(
                f"rollout {current.id} on {name} is still {current.state} ({current.phase}) after {timeout}; "
                "see 'shipyard rollout status', or wait again with a longer --timeout"
            )
        time.sleep(every)
    ended = f"rollout {current.id} of version {current.version} on {name} {current.state.replace('_', ' ')}"
    if current.state not in ("promoted", "passed"):
        raise RolloutError(f"{ended}: {current.reason or 'no reason given'}")
    console.print(ended, markup=False, highlight=False)


@rollout_app.command("pause")
def rollout_pause(name: Name, reason: Reason = "") -> None:
    """Hold the rollout at its step; the controller waits until it is resumed."""
    _steer(name, "pause", reason)


@rollout_app.command("resume")
def rollout_resume(name: Name, reason: Reason = "") -> None:
    """Carry on a paused rollout; its step starts again."""
    _steer(name, "resume", reason)


@rollout_app.command("promote")
def rollout_promote(name: Name, reason: Reason = "") -> None:
    """Promote now, skipping the remaining steps (the alias still goes through the gates)."""
    _steer(name, "promote", reason)


@rollout_app.command("abort")
def rollout_abort(name: Name, reason: Reason = "") -> None:
    """Stop the rollout and give all traffic back to the version stable before it."""
    _steer(name, "abort", reason)


@rollout_app.command("history")
def rollout_history(
    name: Name,
    limit: Annotated[int, typer.Option(help="The newest entries to show.")] = 100,
    json_out: JsonOpt = False,
) -> None:
    """Every step, verdict and decision of the deployment's rollouts, oldest first."""
    from shipyard.rollout.rollouts import Rollouts

    with registry() as reg:
        entries = Rollouts(reg).history(name, limit=limit)
    if json_out:
        emit_json([e.to_dict() for e in entries])
        return
    if not entries:
        console.print(f"no rollouts on {name} yet")
        return
    print_history(entries)


def print_history(entries: list[HistoryEntry]) -> None:
    """The history as a table: when, which rollout, what happened, by whom, and why."""
    table(
        None,
        ["at", "rollout", "step", "event", "by", "detail"],
        [(f"{e.at:%H:%M:%S}", e.rollout, e.step + 1, e.kind, e.actor, describe(e)) for e in entries],
    )


def describe(entry: HistoryEntry) -> str:
    """One line for a history entry: the arms it set and the verdict or reason behind it."""
    from shipyard.rollout.deployments import Arm

    detail = entry.detail
    parts = []
    if entry.kind == "start":
        plan = detail.get("plan", {})
        parts.append(f"{detail.get('from')} -> {detail.get('to')} by {plan.get('strategy')}")
    if "arms" in detail:
        parts.append(", ".join(str(Arm(a["version"], a["role"], a["weight"])) for a in detail["arms"]))
    if "verdict" in detail:
        parts.append(f"{detail['verdict']}: {detail.get('reason', '')}".rstrip(": "))
    elif detail.get("reason"):
        parts.append(str(detail["reason"]))
    return "; ".join(parts)


# -- the control plane ---------------------------------------------------------------------------
def server(
    every: Annotated[float, typer.Option(help="Seconds between the controller's passes.")] = 2.0,
    lease_seconds: Annotated[
        float, typer.Option(help="How long the controller's lease lasts; a standby takes over after it.")
    ] = 15.0,
) -> None:
    """The control plane: run the rollout controller until SIGTERM (one acts across all replicas)."""
    from shipyard.rollout.controller import Controller

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    stop = threading.Event()
    for s in (signal.SIGTERM, signal.SIGINT):
        signal.signal(s, lambda *_: stop.set())
    with registry() as reg:
        controller = Controller(reg, lease_seconds=lease_seconds)
        console.print(f"rollout controller {controller.holder} running; Ctrl-C stops it")
        controller.run(stop, every=every)


# -- helpers -------------------------------------------------------------------------------------
def _steer(name: str, action: str, reason: str) -> None:
    from shipyard.rollout.deployments import Deployments
    from shipyard.rollout.rollouts import Rollouts

    with registry() as reg:
        moved: Rollout = getattr(Rollouts(reg), action)(name, reason=reason)
        found = Deployments(reg).get(name)
    console.print(f"rollout {moved.id} on {name} is {moved.state} ({moved.phase}); arms {_arms(found)}")


def _show_deployment(
    found: Deployment,
    current: Rollout | None,
    history: list[HistoryEntry] | None = None,
    now: Verdict | None = None,
) -> None:
    pairs: list[tuple[str, Any]] = [
        ("model", found.model + (f" (follows @{found.alias})" if found.alias else "")),
        ("arms", _arms(found)),
        ("routing key", found.sticky),
        ("generation", found.generation),
    ]
    verdict = None
    if current is not None:
        pairs += [
            ("rollout", f"{current.id}: {found.model}:{current.from_version} -> {current.version}"),
            ("state", current.state + (f" ({current.reason})" if current.reason else "")),
        ]
        if current.active:
            pairs.append(("step", f"{current.phase}, for {_age(current.step_started_at)}"))
        verdict = _latest_verdict(history or [], current)
        if verdict is not None:
            pairs.append(("latest verdict", f"{describe(verdict)} (at {verdict.at:%H:%M:%S})"))
    key_values(f"deployment {found.name}", pairs)
    if now is not None and now.checks:
        table(
            f"analysis of the step now: {now.status}",
            ["rule", "status", "why"],
            [(c.rule, c.status, c.reason) for c in now.checks],
        )


def _latest_verdict(history: list[HistoryEntry], current: Rollout | None) -> HistoryEntry | None:
    if current is None:
        return None
    mine = [e for e in history if e.rollout == current.id and "verdict" in e.detail]
    return mine[-1] if mine else None


def _arms(found: Deployment) -> str:
    return ", ".join(map(str, found.arms))


def _short(rollout: Rollout) -> str:
    return f"{rollout.id} -> {rollout.version}: {rollout.state}, {rollout.phase}"


def _age(since: datetime) -> str:
    from shipyard.store.metadata import utcnow

    seconds = int((utcnow() - since).total_seconds())
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def _preview_rows(path: Path) -> list[dict[str, Any]]:
    """The rows of a JSON Lines file, one object per line."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ConfigError(f"cannot read --preview-checks {path}: {exc.strerror}") from None
    rows = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ConfigError(
                f"{path}:{number} is not JSON ({exc.msg}); expected one row object per line"
            ) from None
        if not isinstance(row, dict):
            raise ConfigError(
                f"{path}:{number} is a JSON {type(row).__name__}; expected an object of features"
            )
        rows.append(row)
    if not rows:
        raise ConfigError(f"{path} holds no rows; expected one JSON object per line")
    return rows


def _rules(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read --rules {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"--rules {path} is not YAML or JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"--rules {path} holds a {type(data).__name__}; expected a mapping of thresholds")
    return data
