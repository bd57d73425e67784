"""A rollout's plan: the strategy, its steps and timing, and the analysis rules each step must pass."""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

from shipyard.errors import RolloutError

__all__ = ["STRATEGIES", "AnalysisRules", "Plan", "Strategy", "parse_steps"]

Strategy = Literal["canary", "blue-green", "shadow"]
STRATEGIES: tuple[Strategy, ...] = ("canary", "blue-green", "shadow")


@dataclass(frozen=True, kw_only=True)
class AnalysisRules:
    """What the new arm must show against the stable arm on the same window, and on how much.

    Args:
        min_requests: the fewest requests each arm must have answered in the window before any
            verdict; fewer mean *wait*, never pass or fail.
        max_error_rate_increase: the new arm's error rate may exceed the stable's by at most this
            (absolute share), and the difference must also be significant.
        max_latency_ratio_p95: the new arm's p95 latency over the stable's, at most.
        max_latency_ratio_p99: the same for p99.
        max_prediction_psi: the PSI of the new arm's outputs (scores, class mix) against the
            stable's, at most.
        min_agreement: on shadowed requests, the share of rows where both arms predict the
            same label (classifiers) or within `agreement_tolerance` (regressors), at least.
        agreement_tolerance: the relative difference a regressor's answers may have and agree.
        max_performance_drop: with labels, the new arm's headline score may be below the
            stable's by at most this (absolute).
        min_labels: the fewest labelled rows per arm before the performance rule judges.
        alpha: the significance an error-rate or performance difference must reach to fail.
    """

    min_requests: int = 100
    max_error_rate_increase: float = 0.01
    max_latency_ratio_p95: float = 1.5
    max_latency_ratio_p99: float = 2.0
    max_prediction_psi: float = 0.25
    min_agreement: float = 0.9
    agreement_tolerance: float = 0.05
    max_performance_drop: float = 0.05
    min_labels: int = 50
    alpha: float = 0.05

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise RolloutError(f"analysis rule {f.name} is {value!r}; expected a number")
            if value < 0:
                raise RolloutError(f"analysis rule {f.name} is {value}; expected 0 or more")
        if self.min_requests < 1 or self.min_labels < 1:
            raise RolloutError("min_requests and min_labels must be at least 1")
        if not 0 < self.alpha < 1:
            raise RolloutError(f"analysis rule alpha is {self.alpha}; expected between 0 and 1")

    def to_dict(self) -> dict[str, Any]:
        """The rules as JSON-safe data."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AnalysisRules:
        """Rules from `to_dict`'s shape; unknown keys are refused.

        Raises:
            RolloutError: a key is unknown or a value malformed.
        """
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise RolloutError(f"unknown analysis rules {unknown}; expected some of {sorted(known)}")
        return cls(**dict(data))


@dataclass(frozen=True, kw_only=True)
class Plan:
    """How a rollout proceeds.

    Args:
        strategy: 'canary' (weight steps), 'blue-green' (preview, then all at once) or 'shadow'
            (copies only; analysis, no traffic moved).
        steps: the canary's weights in percent, rising, ending at 100.
        interval: seconds each step lasts at least, and the analysis window.
        duration: seconds a shadow rollout analyses before its verdict.
        keep_warm: seconds a blue/green rollout keeps the old version loaded after the switch,
            ready for an instant rollback.
        shadow_share: percent of requests a shadow arm gets copies of.
        preview: rows (as column lists) a blue/green preview sends to the new version before
            any traffic; every one must be answered.
        promote_alias: move the deployment's alias to the new version on promotion.
        rules: the analysis rules.
    """

    strategy: Strategy
    steps: tuple[float, ...] = (5.0, 25.0, 50.0, 100.0)
    interval: float = 120.0
    duration: float = 3600.0
    keep_warm: float = 600.0
    shadow_share: float = 100.0
    preview: tuple[Mapping[str, Any], ...] = ()
    promote_alias: bool = True
    rules: AnalysisRules = field(default_factory=AnalysisRules)

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise RolloutError(f"strategy {self.strategy!r} is not one of {', '.join(STRATEGIES)}")
        if self.strategy == "canary":
            parse_steps(self.steps)
        for name in ("interval", "duration", "keep_warm"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
                raise RolloutError(f"--{name.replace('_', '-')} is {value!r}; expected seconds above 0")
        if not 0 < self.shadow_share <= 100:
            raise RolloutError(
                f"shadow share is {self.shadow_share}; expected a percent above 0, at most 100"
            )

    @property
    def last_step(self) -> int:
        """The index of the step whose passing analysis promotes (a canary's last step below 100)."""
        return len(self.steps) - 2 if self.strategy == "canary" else 0 if self.strategy == "shadow" else 1

    def to_dict(self) -> dict[str, Any]:
        """The plan as JSON-safe data (stored with the rollout)."""
        return {
            "strategy": self.strategy,
            "steps": list(self.steps),
            "interval": self.interval,
            "duration": self.duration,
            "keep_warm": self.keep_warm,
            "shadow_share": self.shadow_share,
            "preview": [dict(p) for p in self.preview],
            "promote_alias": self.promote_alias,
            "rules": self.rules.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Plan:
        """The plan `to_dict` stored."""
        return cls(
            strategy=data["strategy"],
            steps=tuple(float(s) for s in data.get("steps", ())),
            interval=float(data["interval"]),
            duration=float(data["duration"]),
            keep_warm=float(data["keep_warm"]),
            shadow_share=float(data["shadow_share"]),
            preview=tuple(data.get("preview", ())),
            promote_alias=bool(data.get("promote_alias", True)),
            rules=AnalysisRules.from_dict(data.get("rules", {})),
        )


def parse_steps(steps: str | Sequence[float]) -> tuple[float, ...]:
    """Canary weights from '5,25,50,100' or a sequence, checked: rising, above 0, ending at 100.

    Raises:
        RolloutError: they are not.
    """
    if isinstance(steps, str):
        try:
            values = tuple(float(s) for s in steps.split(",") if s.strip())
        except ValueError:
            raise RolloutError(f"--steps {steps!r} is not a list of percents like '5,25,50,100'") from None
    else:
        values = tuple(float(s) for s in steps)
    if not values:
        raise RolloutError("a canary needs at least one step, e.g. --steps 5,25,50,100")
    if any(not math.isfinite(v) or not 0 < v <= 100 for v in values):
        raise RolloutError(f"canary steps {list(values)} must be percents above 0 and at most 100")
    if any(b <= a for a, b in itertools.pairwise(values)):
        raise RolloutError(f"canary steps {list(values)} must rise, e.g. 5,25,50,100")
    if len(values) < 2:
        raise RolloutError(
            f"canary steps {list(values)} need at least one step below 100 to analyse, e.g. 10,100"
        )
    if values[-1] != 100:
        raise RolloutError(
            f"canary steps {list(values)} must end at 100, where the new version takes all traffic"
        )
    return values
