"""Segments of a data set: the values of a categorical feature, or bins of a numeric one.

A slice is named `FEATURE` (categories, or quartile bins for a numeric feature with many values),
`FEATURE:N` (N equal-count bins) or `FEATURE:E1,E2,...` (bins between the given edges). Each row
falls in exactly one group; missing values form the group `(missing)`, and a categorical feature
with more than `MAX_GROUPS` values keeps the most frequent and pools the rest in `(other)`.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from shipyard.core.batch import Array
from shipyard.errors import EvaluationError

__all__ = ["MAX_GROUPS", "MISSING", "OTHER", "SliceSpec", "grouping"]

MAX_GROUPS = 20
MISSING = "(missing)"
OTHER = "(other)"
_DEFAULT_BINS = 4
# A numeric feature with at most this many distinct values is sliced by value, not binned.
_FEW_VALUES = 10
_SPEC = re.compile(r"^(?P<feature>[^:]+?)(?::(?P<bins>.*))?$")


@dataclass(frozen=True)
class SliceSpec:
    """How to cut a feature into groups.

    Args:
        feature: the column to slice by.
        bins: equal-count bins of a numeric feature (None: by value, or quartiles when many).
        edges: explicit bin edges of a numeric feature.
    """

    feature: str
    bins: int | None = None
    edges: tuple[float, ...] | None = None

    @classmethod
    def parse(cls, text: str) -> SliceSpec:
        """Read `FEATURE`, `FEATURE:N` or `FEATURE:E1,E2,...`.

        Raises:
            EvaluationError: the text is none of those forms.
        """
        match = _SPEC.match(text.strip())
        if match is None or not match["feature"].strip():
            raise EvaluationError(
                f"slice {text!r} is malformed; expected FEATURE, FEATURE:N (N bins) or "
                "FEATURE:E1,E2,... (bin edges), e.g. 'country', 'age:4' or 'age:18,30,50'"
            )
        feature, spec = match["feature"].strip(), match["bins"]
        if spec is None or not spec.strip():
            return cls(feature)
        parts = [p.strip() for p in spec.split(",")]
        try:
            numbers = [float(p) for p in parts]
        except ValueError:
            raise EvaluationError(
                f"slice {text!r} has {spec!r} after the colon; expected a bin count (e.g. 4) or "
                "increasing bin edges separated by commas (e.g. 18,30,50)"
            ) from None
        if len(numbers) == 1:
            if numbers[0] < 2 or numbers[0] != int(numbers[0]):
                raise EvaluationError(f"slice {text!r} asks for {spec} bins; expected a whole number >= 2")
            return cls(feature, bins=int(numbers[0]))
        if any(b <= a for a, b in itertools.pairwise(numbers)):
            raise EvaluationError(f"slice {text!r} has edges {numbers}; expected strictly increasing edges")
        return cls(feature, edges=tuple(numbers))

    def __str__(self) -> str:
        if self.edges is not None:
            return f"{self.feature}:{','.join(f'{e:g}' for e in self.edges)}"
        return self.feature if self.bins is None else f"{self.feature}:{self.bins}"


def grouping(column: Array, spec: SliceSpec) -> tuple[list[str], Array, str]:
    """Cut a column into groups.

    Returns:
        The group labels, each row's group as a position into them, and the kind of cut
        ('categorical' or 'binned').
    """
    numeric = column.dtype.kind in "iuf"
    if not numeric and column.dtype.kind == "O":
        converted = pd.to_numeric(pd.Series(column), errors="coerce")
        present = pd.notna(pd.Series(column))
        if spec.bins is not None or spec.edges is not None:
            if bool((converted.isna() & present).any()):
                raise EvaluationError(
                    f"slice {spec} bins feature {spec.feature!r}, but it holds text values; bin a "
                    f"numeric feature, or slice by value with just '{spec.feature}'"
                )
            column, numeric = converted.to_numpy(dtype=np.float64), True
    if numeric and column.dtype.kind != "b":
        values = column.astype(np.float64, copy=False)
        distinct = np.unique(values[~np.isnan(values)])
        if spec.bins is not None or spec.edges is not None or len(distinct) > _FEW_VALUES:
            return (*_binned(values, spec), "binned")
    return (*_categorical(column), "categorical")


def _categorical(column: Array) -> tuple[list[str], Array]:
    series = pd.Series(column, copy=False)
    missing = series.isna().to_numpy()
    text = series.astype(str).to_numpy(dtype=object)
    text[missing] = MISSING
    codes, uniques = pd.factorize(text)
    counts = np.bincount(codes, minlength=len(uniques))
    order = np.argsort(-counts, kind="stable")
    labels = [str(uniques[j]) for j in order]
    rank = np.empty(len(uniques), dtype=np.int64)
    rank[order] = np.arange(len(uniques))
    index = rank[codes]
    if len(labels) > MAX_GROUPS:
        index = np.minimum(index, MAX_GROUPS - 1)
        labels = [*labels[: MAX_GROUPS - 1], OTHER]
    return labels, index


def _binned(values: Array, spec: SliceSpec) -> tuple[list[str], Array]:
    present = ~np.isnan(values)
    if not present.any():
        return [MISSING], np.zeros(len(values), dtype=np.int64)
    if spec.edges is not None:
        inner = np.asarray(spec.edges, dtype=np.float64)
        low, high = float(np.nanmin(values)), float(np.nanmax(values))
        edges = np.unique(np.r_[min(low, inner[0]), inner, max(high, inner[-1])])
    else:
        bins = spec.bins or _DEFAULT_BINS
        edges = np.unique(np.quantile(values[present], np.linspace(0.0, 1.0, bins + 1)))
    if len(edges) < 2:
        edges = np.r_[edges, edges[-1]] if len(edges) else np.array([0.0, 0.0])
    index = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, len(edges) - 2)
    labels = [
        f"[{_num(edges[j])}, {_num(edges[j + 1])}{']' if j == len(edges) - 2 else ')'}"
        for j in range(len(edges) - 1)
    ]
    if not present.all():
        index = np.where(present, index, len(labels))
        labels.append(MISSING)
    return labels, index.astype(np.int64)


def _num(value: float) -> str:
    return f"{value:.4g}"
