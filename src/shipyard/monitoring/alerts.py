"""Alert rules over a monitoring report, de-duplicated episodes, and the actions they trigger.

A rule looks at one `MonitorReport` and says which of its conditions hold (a rule on "any
feature" holds once per drifted feature). Each condition that starts to hold opens an episode
in the `alerts` table and notifies; while it keeps holding, later checks only touch the episode;
when it stops, the episode is resolved and that is notified too. So a drift that lasts a day
alerts once, not once per check. Actions: the log, a webhook (JSON body, retried with
exponential back-off on connection errors, 429 and 5xx), and a command run when an alert opens
(the retraining trigger).

Rules, as `--rule` takes them::

    feature_drift[:FEATURE]          a feature (or any) drifted
    dataset_drift                    the weighted share of drifted features reached its threshold
    prediction_drift                 a model output drifted
    performance_drop[:METRIC[:DROP]] labelled performance fell by DROP (0.05) below the evaluation,
                                     and the confidence interval lies wholly below the evaluation
    detector                         DDM or ADWIN signalled on the error stream in the window
    error_rate[:SHARE]               more than SHARE (0.05) of requests were rejected
    latency[:QUANTILE[:MS]]          the window's p99 (or p50, p95) latency is over MS (1000)
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from shipyard.core.jsonsafe import json_safe
from shipyard.core.metric_table import lower_is_better, primary_metric
from shipyard.errors import MonitorConfigError
from shipyard.monitoring.monitor import MonitorReport
from shipyard.security.access import Action
from shipyard.security.context import Context, HasContext, context_of
from shipyard.store.metadata import utcnow
from shipyard.store.schema import alerts

__all__ = ["DEFAULT_RULES", "Alert", "AlertBook", "Firing", "Rule", "Webhook"]

log = logging.getLogger(__name__)

DEFAULT_RULES = (
    "feature_drift",
    "dataset_drift",
    "prediction_drift",
    "performance_drop",
    "detector",
    "error_rate",
    "latency",
)
_KINDS = frozenset(DEFAULT_RULES)  # every kind, each also a default rule in its plain form


@dataclass(frozen=True, slots=True)
class Firing:
    """One condition of a rule that holds now.

    Args:
        rule: the rule's key plus what holds (`feature_drift:income`).
        message: the condition in words.
        detail: the figures behind it.
    """

    rule: str
    message: str
    detail: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class Rule:
    """A condition on a monitoring report.

    Args:
        kind: one of the kinds in the module docstring.
        target: the feature, metric or latency quantile the rule is about (None: any or default).
        threshold: the drop, share or milliseconds (None: the kind's default).
    """

    kind: str
    target: str | None = None
    threshold: float | None = None

    @property
    def key(self) -> str:
        """The rule as `--rule` writes it."""
        parts = [self.kind]
        if self.kind == "error_rate":
            return self.kind if self.threshold is None else f"{self.kind}:{self.threshold:g}"
        if self.target is not None or self.threshold is not None:
            parts.append(self.target or "")
        if self.threshold is not None:
            parts.append(f"{self.threshold:g}")
        return ":".join(parts)

    @classmethod
    def parse(cls, text: str) -> Rule:
        """Read a rule such as `performance_drop:accuracy:0.05` or `latency:p95:250`.

        Raises:
            MonitorConfigError: the kind is unknown or a threshold is not a number above 0.
        """
        kind, *rest = text.strip().split(":")
        if kind not in _KINDS:
            raise MonitorConfigError(
                f"alert rule {text!r} has unknown kind {kind!r}; expected one of {sorted(_KINDS)}"
            )
        target: str | None = None
        threshold: float | None = None
        numeric_first = kind in ("error_rate",)
        if rest and numeric_first:
            threshold = _number(rest[0], text)
            rest = rest[1:]
        elif rest:
            target = rest[0] or None
            if len(rest) > 1:
                threshold = _number(rest[1], text)
            rest = rest[2:]
        if rest:
            raise MonitorConfigError(
                f"alert rule {text!r} has too many parts; see 'shipyard monitor watch --help'"
            )
        if kind in ("dataset_drift", "prediction_drift", "detector") and (target or threshold is not None):
            raise MonitorConfigError(f"alert rule {kind!r} takes no target or threshold; got {text!r}")
        if kind == "latency" and target not in (None, "p50", "p95", "p99"):
            raise MonitorConfigError(f"alert rule {text!r}: latency quantile must be p50, p95 or p99")
        return cls(kind=kind, target=target, threshold=threshold)

    def check(self, report: MonitorReport) -> list[Firing]:
        """The conditions of this rule that hold in `report`."""
        drift = report.drift
        if self.kind == "feature_drift":
            if drift is None:
                return []
            return [
                Firing(
                    f"feature_drift:{c.name}",
                    f"feature {c.name!r} drifted: {'; '.join(c.reasons)}",
                    {"stats": dict(c.stats), "importance": c.importance},
                )
                for c in drift.features
                if c.drifted and self.target in (None, c.name)
            ]
        if self.kind == "dataset_drift":
            if drift is None or not drift.dataset_drift:
                return []
            return [
                Firing(
                    "dataset_drift",
                    f"{drift.share:.0%} of features drifted ({', '.join(drift.drifted_features)})",
                    {"share": drift.share, "weighted": drift.weighted, "features": drift.drifted_features},
                )
            ]
        if self.kind == "prediction_drift":
            if drift is None or not drift.prediction_drift:
                return []
            moved = [c for c in drift.outputs if c.drifted]
            return [
                Firing(
                    "prediction_drift",
                    f"the model's outputs drifted: {', '.join(c.name for c in moved)}",
                    {"outputs": {c.name: dict(c.stats) for c in moved}},
                )
            ]
        if self.kind == "performance_drop":
            return self._performance(report)
        if self.kind == "detector":
            if not report.detections:
                return []
            names = sorted({d["detector"] for d in report.detections})
            last = report.detections[-1]
            return [
                Firing(
                    "detector",
                    f"{' and '.join(names)} signalled concept drift on the error stream "
                    f"(last at {last['time']})",
                    {"detections": list(report.detections)},
                )
            ]
        if self.kind == "error_rate":
            limit = self.threshold if self.threshold is not None else 0.05
            if report.error_rate is None or report.error_rate <= limit:
                return []
            return [
                Firing(
                    "error_rate",
                    f"{report.error_rate:.1%} of {report.requests} requests were rejected "
                    f"(limit {limit:.1%})",
                    {"error_rate": report.error_rate, "requests": report.requests},
                )
            ]
        quantile = self.target or "p99"
        limit = self.threshold if self.threshold is not None else 1000.0
        value = (report.latency_ms or {}).get(quantile)
        if value is None or value <= limit:
            return []
        return [
            Firing(
                f"latency:{quantile}",
                f"{quantile} latency is {value:.0f} ms (limit {limit:g} ms)",
                {"ms": value},
            )
        ]

    def _performance(self, report: MonitorReport) -> list[Firing]:
        perf = report.performance
        if not perf or not perf.get("baseline"):
            return []
        metric = self.target or primary_metric(report.task)
        drop = self.threshold if self.threshold is not None else 0.05
        value, baseline = perf["metrics"].get(metric), perf["baseline"].get(metric)
        if value is None or baseline is None:
            return []
        ci = perf.get("ci", {}).get(metric, {})
        lower_better = lower_is_better(metric)
        worse = value - baseline if lower_better else baseline - value
        # Worse by more than the drop, and the interval wholly on the worse side of the evaluation.
        beyond = ci.get("low", value) > baseline if lower_better else ci.get("high", value) < baseline
        if worse < drop or not beyond:
            return []
        return [
            Firing(
                f"performance_drop:{metric}",
                f"{metric} is {value:.3f} on {perf['rows']} labelled rows, "
                f"against {baseline:.3f} in evaluation",
                {"metric": metric, "value": value, "baseline": baseline, "ci": ci},
            )
        ]


@dataclass(frozen=True, kw_only=True)
class Alert:
    """One alert episode."""

    id: int
    model: str
    rule: str
    state: str
    opened_at: datetime
    last_seen_at: datetime
    resolved_at: datetime | None
    checks: int
    detail: Mapping[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """The alert as JSON-safe data."""
        return {
            "id": self.id,
            "model": self.model,
            "rule": self.rule,
            "state": self.state,
            "opened_at": self.opened_at.isoformat(),
            "last_seen_at": self.last_seen_at.isoformat(),
            "resolved_at": self.resolved_at.isoformat() if self.resolved_at else None,
            "checks": self.checks,
            "message": self.detail.get("message", ""),
            "detail": dict(self.detail),
        }


class AlertBook:
    """Alert episodes in the metadata store: opened, seen again, resolved.

    Recording a check needs only the reader role on the model: an alert is what the principal
    read in the model's predictions, and `monitor watch` needs no more.

    Args:
        context: who acts, and the metadata store; or anything holding one, such as a `Registry`.
    """

    def __init__(self, context: Context | HasContext) -> None:
        self.context = context_of(context)
        self.meta = self.context.meta

    def observe(
        self, model: str, firings: Sequence[Firing], checked: Sequence[Rule]
    ) -> tuple[list[Alert], list[Alert]]:
        """Record one check in one transaction; returns the alerts opened and those resolved.

        Args:
            model: the model checked.
            firings: what holds now.
            checked: the rules that were checked (only their episodes can resolve).

        Raises:
            PermissionDeniedError: the principal may not read the model.
        """
        self.context.allow(Action.READ, model)
        now = utcnow()
        holding = {f.rule: f for f in firings}
        kinds = {r.kind for r in checked}

        def change(conn: sa.Connection) -> tuple[list[int], list[int]]:
            rows = conn.execute(
                sa.select(alerts).where(alerts.c.model == model, alerts.c.state == "firing").with_for_update()
            ).all()
            open_by_rule = {r.rule: r for r in rows}
            opened, resolved = [], []
            for rule, firing in holding.items():
                detail = {"message": firing.message, **_plain(firing.detail)}
                if rule in open_by_rule:
                    row = open_by_rule[rule]
                    conn.execute(
                        alerts.update()
                        .where(alerts.c.id == row.id)
                        .values(last_seen_at=now, checks=row.checks + 1, detail=detail)
                    )
                    continue
                result = conn.execute(
                    alerts.insert().values(
                        model=model,
                        rule=rule,
                        state="firing",
                        opened_at=now,
                        last_seen_at=now,
                        checks=1,
                        detail=detail,
                    )
                )
                key = result.inserted_primary_key
                assert key is not None
                opened.append(int(key[0]))
            for rule, row in open_by_rule.items():
                if rule not in holding and rule.split(":", 1)[0] in kinds:
                    conn.execute(
                        alerts.update().where(alerts.c.id == row.id).values(state="resolved", resolved_at=now)
                    )
                    resolved.append(int(row.id))
            return opened, resolved

        opened_ids, resolved_ids = self.meta.write(change)
        if not opened_ids and not resolved_ids:
            return [], []
        with self.meta.read() as conn:
            rows = conn.execute(sa.select(alerts).where(alerts.c.id.in_(opened_ids + resolved_ids))).all()
        by_id = {a.id: a for a in map(_alert, rows)}
        return [by_id[i] for i in opened_ids], [by_id[i] for i in resolved_ids]

    def list(self, *, model: str | None = None, state: str | None = None, limit: int = 100) -> list[Alert]:
        """Alert episodes, newest first: of `model`, or of every model the principal sees.

        Raises:
            PermissionDeniedError: the principal may not read the model.
        """
        self.context.allow(Action.READ, model)
        query = sa.select(alerts).order_by(alerts.c.id.desc()).limit(limit)
        if model is not None:
            query = query.where(alerts.c.model == model)
        if state is not None:
            query = query.where(alerts.c.state == state)
        sees = self.context.principal.sees
        with self.meta.read() as conn:
            return [_alert(r) for r in conn.execute(query).all() if sees(r.model)]


class Webhook:
    """POST each alert as JSON to a URL, retried with exponential back-off.

    Args:
        url: where to post.
        attempts: tries in all.
        backoff: seconds before the second try; doubled before each next one.
        timeout: seconds per try.
    """

    def __init__(self, url: str, *, attempts: int = 5, backoff: float = 1.0, timeout: float = 10.0) -> None:
        if not url.startswith(("http://", "https://")):
            raise MonitorConfigError(f"webhook URL {url!r} must start with http:// or https://")
        self.url = url
        self.attempts = attempts
        self.backoff = backoff
        self.timeout = timeout

    def send(self, body: Mapping[str, Any], *, sleep: Callable[[float], None] = time.sleep) -> bool:
        """Post `body`; True when the receiver answered 2xx within the attempts."""
        import httpx

        delay = self.backoff
        for attempt in range(1, self.attempts + 1):
            try:
                response = httpx.post(self.url, json=body, timeout=self.timeout)
                if response.is_success:
                    return True
                retry = response.status_code == 429 or response.status_code >= 500
                reason = f"HTTP {response.status_code}"
            except httpx.HTTPError as exc:  # its text may repeat the URL, with its token
                retry, reason = True, type(exc).__name__
            # Webhook URLs often carry a token in their path or query: the log shows the host only.
            where = _host_of(self.url)
            if not retry or attempt == self.attempts:
                log.error("webhook %s refused the alert after %d attempt(s): %s", where, attempt, reason)
                return False
            log.warning("webhook %s failed (%s); retrying in %.1fs", where, reason, delay)
            sleep(delay)
            delay *= 2
        return False


def _host_of(url: str) -> str:
    """`https://hooks.example.com/...`: a URL with its credentials, path and query left out."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or '?'}{f':{parts.port}' if parts.port else ''}/..."


def _alert(row: Any) -> Alert:
    return Alert(
        id=int(row.id),
        model=row.model,
        rule=row.rule,
        state=row.state,
        opened_at=row.opened_at,
        last_seen_at=row.last_seen_at,
        resolved_at=row.resolved_at,
        checks=int(row.checks),
        detail=row.detail,
    )


def _number(text: str, rule: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise MonitorConfigError(f"alert rule {rule!r}: {text!r} is not a threshold above 0")
    return value


def _plain(value: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(json.dumps(json_safe(value), default=str))
    return out
