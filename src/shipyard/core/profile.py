"""Mergeable per-feature statistics of a data set or a window of traffic: the drift reference.

Numeric features keep a histogram on quantile edges taken from the reference data (100 bins by
default, so a 10-bin PSI and a fine-grid KS both come from one profile), plus missing count,
min, max, mean and the sum of squared deviations. Categorical features keep counts per value.
Profiles built on the same edges add up: `profile(A) + profile(B) == profile(A and B)`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from shipyard.core import objects
from shipyard.core.batch import Array, Batch, Predictions
from shipyard.core.contract import Contract
from shipyard.core.dtypes import DType
from shipyard.errors import ProfileError

__all__ = ["CategoricalProfile", "ColumnProfile", "NumericProfile", "Profile", "numeric", "sorted_present"]

DEFAULT_BINS = 100
MAX_TRACKED_CATEGORIES = 1000
OTHER = "__other__"
_PARALLEL_ROWS = 50_000  # below this, threads cost more than they save
_THREADS = 2


@dataclass(frozen=True)
class NumericProfile:
    """Histogram on fixed edges and moments of one numeric column.

    Args:
        edges: the inner bin edges, ascending; bin i holds edges[i-1] <= x < edges[i], with the
            first and last bins open to -inf and +inf.
        counts: values per bin, one more than there are edges.
        missing: missing (NaN or absent) values.
        count: present values.
        min: the smallest present value (None when there is none).
        max: the largest present value.
        mean: the mean of the present values.
        m2: the sum of squared deviations from the mean (variance = m2 / count).
        tail_sums: the sums of the values in the first and the last bin (None in profiles
            written before they were kept), which place the tails' mass for distances.
    """

    edges: tuple[float, ...]
    counts: tuple[int, ...]
    missing: int = 0
    count: int = 0
    min: float | None = None
    max: float | None = None
    mean: float = 0.0
    m2: float = 0.0
    tail_sums: tuple[float, float] | None = (0.0, 0.0)

    kind = "numeric"

    @property
    def variance(self) -> float:
        """The population variance of the present values (0 when fewer than two)."""
        return self.m2 / self.count if self.count > 1 else 0.0

    @classmethod
    def of(cls, values: Array, edges: tuple[float, ...]) -> NumericProfile:
        """Profile `values` on `edges`."""
        present = sorted_present(values)
        return cls.of_sorted(present, edges, missing=len(values) - len(present))

    @classmethod
    def of_sorted(cls, present: Array, edges: tuple[float, ...], *, missing: int = 0) -> NumericProfile:
        """Profile the present values, sorted ascending, on `edges`.

        One sort and a search of the edges into it cost far less than searching a million
        values into the edges (a sort of a million numbers takes milliseconds).
        """
        n = len(present)
        below = np.searchsorted(present, np.asarray(edges, dtype=np.float64), side="left")
        bounds = np.r_[0, below, n]
        counts = np.diff(bounds)
        if not n:
            return cls(edges=edges, counts=tuple(int(c) for c in counts), missing=missing)
        # Values near float64's limits (1e308 is a valid float feature) make the moments infinite:
        # that is the true answer in float64, not a fault to print a warning about per batch.
        with np.errstate(over="ignore", invalid="ignore"):
            mean = float(present.mean())
            deviations = present - mean
            m2 = float(np.dot(deviations, deviations))
            tails = (float(present[: bounds[1]].sum()), float(present[bounds[-2] :].sum()))
        return cls(
            edges=edges,
            counts=tuple(int(c) for c in counts),
            missing=missing,
            count=n,
            min=float(present[0]),
            max=float(present[-1]),
            mean=mean,
            m2=m2,
            tail_sums=tails if edges else (0.0, 0.0),
        )

    def __add__(self, other: NumericProfile) -> NumericProfile:
        if self.edges != other.edges:
            raise ProfileError(
                "cannot add numeric profiles built on different bin edges; build both from the "
                "same reference profile"
            )
        n = self.count + other.count
        delta = other.mean - self.mean
        mean = self.mean + delta * other.count / n if n else 0.0
        m2 = self.m2 + other.m2 + delta * delta * self.count * other.count / n if n else 0.0
        return NumericProfile(
            edges=self.edges,
            counts=tuple(a + b for a, b in zip(self.counts, other.counts, strict=True)),
            missing=self.missing + other.missing,
            count=n,
            min=_pick(min, self.min, other.min),
            max=_pick(max, self.max, other.max),
            mean=mean,
            m2=m2,
            tail_sums=(
                (self.tail_sums[0] + other.tail_sums[0], self.tail_sums[1] + other.tail_sums[1])
                if self.tail_sums is not None and other.tail_sums is not None
                else None
            ),
        )

    def empty(self) -> NumericProfile:
        """A profile of no data on the same edges."""
        return NumericProfile(edges=self.edges, counts=(0,) * len(self.counts))

    def to_dict(self) -> dict[str, Any]:
        """The profile as JSON-safe data."""
        return {
            "kind": self.kind,
            "edges": list(self.edges),
            "counts": list(self.counts),
            "missing": self.missing,
            "count": self.count,
            "min": self.min,
            "max": self.max,
            "mean": self.mean,
            "m2": self.m2,
            "tail_sums": list(self.tail_sums) if self.tail_sums is not None else None,
        }


@dataclass(frozen=True)
class CategoricalProfile:
    """Counts per value of one categorical (string or bool) column.

    Args:
        counts: occurrences per value (as text); values past the tracking cap go to '__other__'.
        missing: missing values.
    """

    counts: Mapping[str, int] = field(default_factory=dict)
    missing: int = 0

    kind = "categorical"

    @property
    def count(self) -> int:
        """Present values."""
        return sum(self.counts.values())

    @classmethod
    def of(cls, values: Array) -> CategoricalProfile:
        """Profile `values`."""
        if values.dtype.kind in "biuf":  # one type: count the distinct values, then name them
            present = values[~np.isnan(values)] if values.dtype.kind == "f" else values
            distinct, tallies = np.unique(present, return_counts=True)
            counts: dict[str, int] = {}
            for value, tally in zip(distinct.tolist(), tallies.tolist(), strict=True):
                text = _category_text(value)
                counts[text] = counts.get(text, 0) + tally
            return cls(_capped(counts), len(values) - len(present))
        missing = objects.missing(values)
        counted = objects.counts(map(_category_text, values[~missing]))
        return cls(_capped(counted), int(missing.sum()))

    def __add__(self, other: CategoricalProfile) -> CategoricalProfile:
        counts = dict(self.counts)
        for key, value in other.counts.items():
            counts[key] = counts.get(key, 0) + value
        return CategoricalProfile(_capped(counts), self.missing + other.missing)

    def empty(self) -> CategoricalProfile:
        """A profile of no data."""
        return CategoricalProfile()

    def to_dict(self) -> dict[str, Any]:
        """The profile as JSON-safe data."""
        return {"kind": self.kind, "counts": dict(self.counts), "missing": self.missing}


ColumnProfile = NumericProfile | CategoricalProfile


@dataclass(frozen=True)
class Profile:
    """Statistics of the inputs and the model's outputs over a set of rows.

    Args:
        rows: how many rows were profiled.
        features: per input feature.
        outputs: per output column ('prediction', 'proba_<class>').
    """

    rows: int
    features: Mapping[str, ColumnProfile]
    outputs: Mapping[str, ColumnProfile] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        data: Batch,
        *,
        contract: Contract | None = None,
        predictions: Predictions | None = None,
        bins: int = DEFAULT_BINS,
    ) -> Profile:
        """Profile `data` (and `predictions`), taking quantile edges from this data: a reference.

        Args:
            data: the rows; with a contract, only its features are profiled, and not the pii
                ones (their values are never kept, not even as category counts).
            contract: tells numeric from categorical features; without one, the dtype does.
            predictions: the model's outputs on `data`, profiled as outputs.
            bins: the number of quantile bins for numeric columns.
        """
        if bins < 2:
            raise ProfileError(f"a profile needs at least 2 bins; got {bins}")
        categorical = _categorical_names(data, contract)
        names = [f.name for f in contract.features if not f.pii] if contract is not None else data.names
        columns = data.columns
        features = _columns(
            {n: functools.partial(_build_column, columns[n], n in categorical, bins) for n in names},
            data.n_rows,
        )
        outputs: dict[str, ColumnProfile] = {}
        if predictions is not None:
            work = {
                name: functools.partial(
                    _build_column, column, name == "prediction" and predictions.task == "classification", bins
                )
                for name, column in predictions.to_columns().items()
            }
            outputs = _columns(work, data.n_rows)
        return cls(data.n_rows, features, outputs)

    def profile(
        self,
        data: Batch,
        predictions: Predictions | None = None,
        *,
        outputs: Mapping[str, Array] | None = None,
    ) -> Profile:
        """Profile new rows on this profile's edges, so the result can be compared and added.

        Args:
            data: the rows.
            predictions: the model's outputs on them.
            outputs: the outputs as columns ('prediction', 'proba_<class>'), as the prediction
                log holds them, when there are no `Predictions`.

        Raises:
            ProfileError: a profiled feature is absent from `data`.
        """
        missing = [n for n in self.features if n not in data.columns]
        if missing:
            raise ProfileError(f"cannot profile rows without the features {missing}")
        columns = data.columns
        features = _columns(
            {n: functools.partial(_like, p, columns[n]) for n, p in self.features.items()}, data.n_rows
        )
        results = predictions.to_columns() if predictions is not None else (outputs or {})
        work = {n: functools.partial(_like, p, results[n]) for n, p in self.outputs.items() if n in results}
        return Profile(data.n_rows, features, _columns(work, data.n_rows) if work else {})

    def empty(self) -> Profile:
        """A profile of no rows on the same edges: the start of a window."""
        return Profile(
            0,
            {n: p.empty() for n, p in self.features.items()},
            {n: p.empty() for n, p in self.outputs.items()},
        )

    def __add__(self, other: Profile) -> Profile:
        if set(self.features) != set(other.features):
            raise ProfileError(
                f"cannot add profiles of different features: {sorted(self.features)} and "
                f"{sorted(other.features)}"
            )
        return Profile(
            self.rows + other.rows,
            {n: _add(p, other.features[n], n) for n, p in self.features.items()},
            {n: _add(p, other.outputs[n], n) if n in other.outputs else p for n, p in self.outputs.items()}
            | {n: p for n, p in other.outputs.items() if n not in self.outputs},
        )

    def to_dict(self) -> dict[str, Any]:
        """The profile as JSON-safe data."""
        return {
            "rows": self.rows,
            "features": {n: p.to_dict() for n, p in self.features.items()},
            "outputs": {n: p.to_dict() for n, p in self.outputs.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Profile:
        """Read a profile written by `to_dict`.

        Raises:
            ProfileError: the data is not a profile.
        """
        try:
            return cls(
                int(data["rows"]),
                {n: _column_from_dict(p) for n, p in data["features"].items()},
                {n: _column_from_dict(p) for n, p in data.get("outputs", {}).items()},
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ProfileError(f"the data is not a Shipyard profile: {exc!r}") from None


def _categorical_names(data: Batch, contract: Contract | None) -> set[str]:
    if contract is not None:
        return {f.name for f in contract.features if f.dtype in (DType.STRING, DType.BOOL)}
    return {n for n, c in data.columns.items() if c.dtype.kind not in "iuf"}


def _build_column(column: Array, categorical: bool, bins: int) -> ColumnProfile:
    if categorical:
        return CategoricalProfile.of(column)
    present = sorted_present(column)
    if len(present):
        inner = np.quantile(present, np.linspace(0, 1, bins + 1)[1:-1], method="linear")
        edges = tuple(float(e) for e in np.unique(inner))
    else:
        edges = ()
    return NumericProfile.of_sorted(present, edges, missing=len(column) - len(present))


def _like(reference: ColumnProfile, column: Array) -> ColumnProfile:
    if isinstance(reference, NumericProfile):
        return NumericProfile.of(numeric(column), reference.edges)
    return CategoricalProfile.of(column)


def numeric(column: Array) -> Array:
    """A column as float64, text that is no number becoming NaN."""
    if column.dtype.kind not in "iufb":
        return objects.to_float(column)
    return column.astype(np.float64, copy=False)


def sorted_present(column: Array) -> Array:
    """The column's present (non-NaN) values as float64, sorted ascending."""
    numbers = numeric(column)
    missing = np.isnan(numbers)
    return np.sort(numbers[~missing] if missing.any() else numbers)


def _columns(work: Mapping[str, Callable[[], ColumnProfile]], rows: int) -> dict[str, ColumnProfile]:
    """Run each column's profiling, on two threads when the rows are many (sorting frees the GIL)."""
    if rows < _PARALLEL_ROWS or len(work) < 2:
        return {n: fn() for n, fn in work.items()}
    with ThreadPoolExecutor(_THREADS) as pool:
        futures = {n: pool.submit(fn) for n, fn in work.items()}
        return {n: f.result() for n, f in futures.items()}


def _add(a: ColumnProfile, b: ColumnProfile, name: str) -> ColumnProfile:
    if isinstance(a, NumericProfile) and isinstance(b, NumericProfile):
        return a + b
    if isinstance(a, CategoricalProfile) and isinstance(b, CategoricalProfile):
        return a + b
    raise ProfileError(f"cannot add a {a.kind} and a {b.kind} profile of column {name!r}")


def _column_from_dict(data: Mapping[str, Any]) -> ColumnProfile:
    if data["kind"] == "numeric":
        return NumericProfile(
            edges=tuple(float(e) for e in data["edges"]),
            counts=tuple(int(c) for c in data["counts"]),
            missing=int(data["missing"]),
            count=int(data["count"]),
            min=data["min"],
            max=data["max"],
            mean=float(data["mean"]),
            m2=float(data["m2"]),
            tail_sums=(float(tails[0]), float(tails[1])) if (tails := data.get("tail_sums")) else None,
        )
    if data["kind"] == "categorical":
        return CategoricalProfile({str(k): int(v) for k, v in data["counts"].items()}, int(data["missing"]))
    raise ValueError(f"unknown column profile kind {data['kind']!r}")


def _category_text(value: Any) -> str:
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    if isinstance(value, float) and not math.isnan(value) and value.is_integer():
        return str(int(value))
    return str(value)


def _capped(counts: dict[str, int]) -> dict[str, int]:
    if len(counts) <= MAX_TRACKED_CATEGORIES:
        return counts
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    kept = dict(ranked[: MAX_TRACKED_CATEGORIES - 1])
    kept[OTHER] = kept.get(OTHER, 0) + sum(v for _, v in ranked[MAX_TRACKED_CATEGORIES - 1 :])
    return kept


def _pick(fn: Any, a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    if b is None:
        return a
    return float(fn(a, b))
