"""When a column counts as drifted: thresholds, per-column overrides, and the dataset verdict."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from shipyard.errors import MonitorConfigError

__all__ = ["DriftSettings", "Thresholds"]


@dataclass(frozen=True, kw_only=True)
class Thresholds:
    """When one column counts as drifted.

    Args:
        psi: the PSI at which a numeric column warns and at which it drifts (0.1 and 0.25).
        js: the Jensen-Shannon distance at which a categorical column drifts.
        wasserstein: the Wasserstein distance, in reference standard deviations, at which a
            numeric column drifts.
        missing: the change in the missing share (absolute) at which a column drifts.
        unseen: the share of current values in categories the reference never had at which a
            categorical column drifts.
        unseen_count: the fewest values in unseen categories that can flag a column, so that
            one typo in a small window does not.
        alpha: the significance a difference must also reach (its test's p-value below alpha).
        min_rows: the fewest current rows a column is judged on; fewer give 'insufficient'.
        ignore: leave the column out of the verdict.
    """

    psi: tuple[float, float] = (0.1, 0.25)
    js: float = 0.1
    wasserstein: float = 0.1
    missing: float = 0.05
    unseen: float = 0.01
    unseen_count: int = 5
    alpha: float = 0.05
    min_rows: int = 100
    ignore: bool = False

    def to_dict(self) -> dict[str, Any]:
        """The thresholds as JSON-safe data."""
        return {
            "psi": list(self.psi),
            "js": self.js,
            "wasserstein": self.wasserstein,
            "missing": self.missing,
            "unseen": self.unseen,
            "unseen_count": self.unseen_count,
            "alpha": self.alpha,
            "min_rows": self.min_rows,
            "ignore": self.ignore,
        }


_THRESHOLD_KEYS = {
    "psi",
    "js",
    "wasserstein",
    "missing",
    "unseen",
    "unseen_count",
    "alpha",
    "min_rows",
    "ignore",
}


@dataclass(frozen=True, kw_only=True)
class DriftSettings:
    """Thresholds for every column, overrides per column, and the dataset verdict.

    Args:
        defaults: the thresholds of every column without its own.
        columns: thresholds per feature or output name (merged over the defaults).
        bins: the number of reference-quantile bins of the PSI.
        dataset_share: the (importance-weighted) share of drifted features at which the data
            set as a whole counts as drifted.
    """

    defaults: Thresholds = field(default_factory=Thresholds)
    columns: Mapping[str, Thresholds] = field(default_factory=dict)
    bins: int = 10
    dataset_share: float = 0.5

    def for_column(self, name: str) -> Thresholds:
        """The thresholds that apply to `name`."""
        return self.columns.get(name, self.defaults)

    @classmethod
    def read(cls, path: str | Path) -> DriftSettings:
        """Read settings from a YAML or JSON file.

        Raises:
            MonitorConfigError: the file cannot be read or is malformed.
        """
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise MonitorConfigError(f"cannot read drift settings {str(path)!r}: {exc.strerror}") from None
        return cls.parse(text, source=str(path))

    @classmethod
    def parse(cls, text: str, *, source: str = "<drift settings>") -> DriftSettings:
        """Read settings from YAML text (JSON is YAML too).

        The shape is::

            defaults: {psi: [0.1, 0.25], js: 0.1, wasserstein: 0.1, alpha: 0.05}
            columns:
              age: {psi: [0.2, 0.4]}
              customer_id: {ignore: true}
            bins: 10
            dataset_share: 0.5

        Raises:
            MonitorConfigError: a key or a value is not one of those above.
        """
        import yaml

        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise MonitorConfigError(f"{source} is not valid YAML: {exc}") from None
        if not isinstance(data, dict):
            raise MonitorConfigError(f"{source} must be a mapping with 'defaults' and 'columns'")
        return cls.from_dict(data, source=source)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "<drift settings>") -> DriftSettings:
        """Settings from plain data (the shape `parse` reads).

        Raises:
            MonitorConfigError: a key or a value is malformed.
        """
        unknown = set(data) - {"defaults", "columns", "bins", "dataset_share"}
        if unknown:
            raise MonitorConfigError(
                f"{source}: unknown keys {sorted(unknown)}; expected defaults, columns, bins, dataset_share"
            )
        defaults = _thresholds(Thresholds(), data.get("defaults") or {}, f"{source}: defaults")
        columns_data = data.get("columns") or {}
        if not isinstance(columns_data, dict):
            raise MonitorConfigError(f"{source}: 'columns' must map column names to thresholds")
        columns = {
            str(name): _thresholds(defaults, value or {}, f"{source}: columns.{name}")
            for name, value in columns_data.items()
        }
        bins = data.get("bins", 10)
        if not isinstance(bins, int) or isinstance(bins, bool) or not 2 <= bins <= 50:
            raise MonitorConfigError(f"{source}: 'bins' must be a whole number from 2 to 50; got {bins!r}")
        share = data.get("dataset_share", 0.5)
        if not isinstance(share, int | float) or isinstance(share, bool) or not 0 < share <= 1:
            raise MonitorConfigError(f"{source}: 'dataset_share' must be in (0, 1]; got {share!r}")
        return cls(defaults=defaults, columns=columns, bins=bins, dataset_share=float(share))

    def to_dict(self) -> dict[str, Any]:
        """The settings as JSON-safe data."""
        return {
            "defaults": self.defaults.to_dict(),
            "columns": {n: t.to_dict() for n, t in self.columns.items()},
            "bins": self.bins,
            "dataset_share": self.dataset_share,
        }


def _thresholds(base: Thresholds, data: Any, where: str) -> Thresholds:
    if not isinstance(data, dict):
        raise MonitorConfigError(f"{where} must be a mapping such as {{psi: [0.1, 0.25]}}; got {data!r}")
    unknown = set(data) - _THRESHOLD_KEYS
    if unknown:
        raise MonitorConfigError(
            f"{where}: unknown keys {sorted(unknown)}; expected {sorted(_THRESHOLD_KEYS)}"
        )
    changes: dict[str, Any] = {}
    for key, value in data.items():
        if key == "psi":
            scalar = isinstance(value, int | float) and not isinstance(value, bool)
            pair = (
                value
                if isinstance(value, list)
                else [value, max(float(value), base.psi[1])]
                if scalar
                else []
            )
            if (
                len(pair) != 2
                or not all(isinstance(v, int | float) and not isinstance(v, bool) and v > 0 for v in pair)
                or not pair[0] <= pair[1]
            ):
                raise MonitorConfigError(
                    f"{where}: psi must be [warn, drift] with 0 < warn <= drift; got {value!r}"
                )
            changes["psi"] = (float(pair[0]), float(pair[1]))
        elif key == "ignore":
            if not isinstance(value, bool):
                raise MonitorConfigError(f"{where}: ignore must be true or false; got {value!r}")
            changes["ignore"] = value
        elif key in ("min_rows", "unseen_count"):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise MonitorConfigError(f"{where}: {key} must be a whole number >= 1; got {value!r}")
            changes[key] = value
        else:
            if not isinstance(value, int | float) or isinstance(value, bool) or not value > 0:
                raise MonitorConfigError(f"{where}: {key} must be a number above 0; got {value!r}")
            if key == "alpha" and value >= 1:
                raise MonitorConfigError(f"{where}: alpha must be below 1; got {value!r}")
            changes[key] = float(value)
    return replace(base, **changes)
