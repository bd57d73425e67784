"""An evaluation's result: the metrics of one version on one data set, as stored and read back."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from shipyard.core.batch import Task
from shipyard.core.jsonsafe import json_safe

if TYPE_CHECKING:
    from shipyard.registry.records import EvaluationRecord

__all__ = ["Evaluation"]


@dataclass(frozen=True, kw_only=True)
class Evaluation:
    """The metrics of one version on one data set.

    Args:
        name: the model's name.
        version: the version evaluated.
        task: 'classification' or 'regression'.
        data: where the rows came from, how many were evaluated and rejected, their fingerprint.
        metrics: the point metrics on every evaluated row.
        confidence: bootstrap intervals of the headline metrics.
        slices: per sliced feature, the metrics of each group with its row count.
        fairness: per sensitive feature, the group rates and the disparities.
        robustness: stability under noise and category swaps, and the attack's success rate.
        curves: ROC and precision-recall curves, thinned for plotting.
        explanations: the version's stored importance and the attributions of a sample of the
            rows, for the report's summary plot (`evaluation.explanations`); empty when not asked.
        settings: the threshold, bins, resamples, seed and level used.
        created_at: when it ran (ISO 8601, UTC).
        seconds: how long it took.
        id: the stored evaluation's id, when stored.
        champion: the champion's evaluation on the same rows, when there is a champion.
        champion_alias: the alias the champion was looked up by.
        champion_error: why the champion could not be evaluated on these rows.
    """

    name: str
    version: int
    task: Task
    data: Mapping[str, Any]
    metrics: Mapping[str, Any]
    confidence: Mapping[str, Any] = field(default_factory=dict)
    slices: Mapping[str, Any] = field(default_factory=dict)
    fairness: Mapping[str, Any] = field(default_factory=dict)
    robustness: Mapping[str, Any] = field(default_factory=dict)
    curves: Mapping[str, Any] = field(default_factory=dict)
    explanations: Mapping[str, Any] = field(default_factory=dict)
    settings: Mapping[str, Any] = field(default_factory=dict)
    created_at: str = ""
    seconds: float = 0.0
    id: int | None = None
    champion: Evaluation | None = None
    champion_alias: str | None = None
    champion_error: str | None = None

    @property
    def ref(self) -> str:
        """`NAME:VERSION` of the version evaluated."""
        return f"{self.name}:{self.version}"

    def to_dict(self) -> dict[str, Any]:
        """The evaluation as JSON-safe data (the champion's in full, under 'champion')."""
        out: dict[str, Any] = {
            "id": self.id,
            "ref": self.ref,
            "name": self.name,
            "version": self.version,
            "task": self.task,
            "created_at": self.created_at,
            "seconds": self.seconds,
            "settings": dict(self.settings),
            "data": dict(self.data),
            "metrics": dict(self.metrics),
            "confidence": dict(self.confidence),
            "slices": dict(self.slices),
            "fairness": dict(self.fairness),
            "robustness": dict(self.robustness),
            "curves": dict(self.curves),
            "explanations": dict(self.explanations),
            "champion_alias": self.champion_alias,
        }
        if self.champion is not None:
            out["champion"] = self.champion.to_dict()
        if self.champion_error is not None:
            out["champion_error"] = self.champion_error
        cleaned: dict[str, Any] = json_safe(out)
        return cleaned

    def _stored(self) -> dict[str, Any]:
        """What the registry keeps: the champion by reference, not in full."""
        body = self.to_dict()
        champion = body.pop("champion", None)
        body.pop("id", None)
        if champion is not None:
            body["champion_ref"] = {"ref": champion["ref"]}
        return body

    @classmethod
    def from_record(cls, record: EvaluationRecord) -> Evaluation:
        """An evaluation read back from the registry (without its champion's)."""
        body = dict(record.body)
        return cls(
            name=record.name,
            version=record.version,
            task=body["task"],
            data=body.get("data", {}),
            metrics=body.get("metrics", {}),
            confidence=body.get("confidence", {}),
            slices=body.get("slices", {}),
            fairness=body.get("fairness", {}),
            robustness=body.get("robustness", {}),
            curves=body.get("curves", {}),
            explanations=body.get("explanations", {}),
            settings=body.get("settings", {}),
            created_at=body.get("created_at", ""),
            seconds=body.get("seconds", 0.0),
            id=record.id,
            champion_alias=body.get("champion_alias"),
            champion_error=body.get("champion_error"),
        )
