"""The feature contract: what a model accepts and returns, inferred from training data.

A contract lists each feature's dtype, whether it may be missing, its observed range and
categories, a PII flag, and a policy for each kind of violation. `Contract.validate` checks a
`Batch` column by column (vectorised, no per-row Python loop) and reports *every* violation:
the per-column checks are in `core/feature_check.py`, the result (`Validation`, `Violation`) in
`core/validation.py`; both names stay importable from here, the contract's public home.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any, Literal, cast

import numpy as np

from shipyard.core.batch import Array, Batch, Label, Task
from shipyard.core.dtypes import (
    INT64_FLOAT_END,
    DType,
)
from shipyard.core.feature_check import COLUMNWISE_ROWS, FeatureCheck, article, as_whole, count_outside
from shipyard.core.validation import PII, Validation, Violation
from shipyard.errors import ContractError

__all__ = [
    "PII",
    "Contract",
    "Feature",
    "Validation",
    "Violation",
    "example_row",
]

MissingAction = Literal["reject", "impute", "pass"]
RangeAction = Literal["reject", "clip", "allow"]
CategoryAction = Literal["reject", "allow"]

_MISSING_ACTIONS: tuple[str, ...] = ("reject", "impute", "pass")
_RANGE_ACTIONS: tuple[str, ...] = ("reject", "clip", "allow")
_CATEGORY_ACTIONS: tuple[str, ...] = ("reject", "allow")
MAX_CATEGORIES = 100


@dataclass(frozen=True, kw_only=True)
class Feature:
    """One input the model accepts, and what to do when a value breaks it.

    Args:
        name: the column name.
        dtype: the value type; a value of another type is always rejected.
        nullable: whether the training data had missing values.
        min: the smallest value seen in training (numeric features).
        max: the largest value seen in training (numeric features).
        categories: the allowed values (string and bool features), or None for free text.
        pii: the value identifies a person: it is never written in clear. Error messages and
            rejects show `<pii>` instead of it, the prediction log keeps `pii_mask` of it, and
            profiles (so drift) leave the feature out.
        pii_mask: how the prediction log keeps a pii value: 'hash' (keyed HMAC-SHA256, so equal
            values still match and joins work) or 'redact' (not at all).
        on_missing: reject the row, impute `impute_value`, or pass the missing value to the model.
        impute_value: the value used when `on_missing` is 'impute'.
        on_out_of_range: reject the row, clip to [min, max], or allow it and count it.
        on_unseen_category: reject the row, or allow it and count it.
    """

    name: str
    dtype: DType
    nullable: bool = False
    min: float | None = None
    max: float | None = None
    categories: tuple[Label, ...] | None = None
    pii: bool = False
    pii_mask: str = "hash"
    on_missing: MissingAction = "reject"
    impute_value: Label | None = None
    on_out_of_range: RangeAction = "allow"
    on_unseen_category: CategoryAction = "allow"

    def __post_init__(self) -> None:
        where = f"feature {self.name!r}"
        if not isinstance(self.name, str) or not self.name:
            raise ContractError(f"a feature has name {self.name!r}; expected a non-empty string")
        _check_choice(where, "on_missing", self.on_missing, _MISSING_ACTIONS)
        _check_choice(where, "on_out_of_range", self.on_out_of_range, _RANGE_ACTIONS)
        _check_choice(where, "on_unseen_category", self.on_unseen_category, _CATEGORY_ACTIONS)
        _check_choice(where, "pii_mask", self.pii_mask, ("hash", "redact"))
        if self.on_missing == "impute" and self.impute_value is None:
            raise ContractError(f"{where} imputes missing values but has no impute_value; set one")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ContractError(f"{where} has min {self.min} above max {self.max}")
        numeric = self.dtype in (DType.INT, DType.FLOAT)
        if not numeric and (self.min is not None or self.max is not None):
            raise ContractError(f"{where} is {self.dtype} and cannot have a range; remove min/max")

    @property
    def is_numeric(self) -> bool:
        """True for int and float features."""
        return self.dtype in (DType.INT, DType.FLOAT)

    def to_dict(self) -> dict[str, Any]:
        """The feature as plain data: every rule spelled out, unset values left out."""
        data: dict[str, Any] = {"name": self.name, "dtype": self.dtype.value}
        for f in fields(self)[2:]:
            value = getattr(self, f.name)
            if value is None or (f.name == "on_out_of_range" and not self.is_numeric):
                continue
            if f.name == "on_unseen_category" and self.categories is None:
                continue
            if f.name == "pii_mask" and not self.pii:
                continue
            data[f.name] = list(value) if isinstance(value, tuple) else value
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Feature:
        """Read a feature written by `to_dict` (or by hand).

        Raises:
            ContractError: a key is unknown or a value has the wrong type.
        """
        if not isinstance(data, Mapping):
            raise ContractError(f"a feature is {type(data).__name__}; expected a mapping")
        name = data.get("name")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ContractError(
                f"feature {name!r} has unknown keys {unknown}; expected some of {sorted(known)}"
            )
        try:
            dtype = DType(str(data.get("dtype")))
        except ValueError:
            raise ContractError(
                f"feature {name!r} has dtype {data.get('dtype')!r}; expected one of "
                f"{[d.value for d in DType]}"
            ) from None
        kwargs = dict(data)
        kwargs["dtype"] = dtype
        for key in ("min", "max"):
            if kwargs.get(key) is not None:
                kwargs[key] = _as_number(name, key, kwargs[key])
        if kwargs.get("categories") is not None:
            if not isinstance(kwargs["categories"], list | tuple):
                raise ContractError(f"feature {name!r} has categories that are not a list")
            kwargs["categories"] = tuple(kwargs["categories"])
        for key in ("nullable", "pii"):
            if key in kwargs and not isinstance(kwargs[key], bool):
                raise ContractError(f"feature {name!r} has {key}={kwargs[key]!r}; expected true or false")
        return cls(**kwargs)


@dataclass(frozen=True, kw_only=True)
class Contract:
    """The features a model accepts, in order, and what it returns.

    Args:
        features: the inputs, in the order the model takes them.
        task: 'classification' or 'regression'.
        target: the training label column, when known.
        classes: the class labels of a classifier, in the order of its probabilities.
    """

    features: tuple[Feature, ...]
    task: Task
    target: str | None = None
    classes: tuple[Label, ...] | None = None

    def __post_init__(self) -> None:
        names = [f.name for f in self.features]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ContractError(f"the contract lists features {dupes} more than once")
        if self.task not in ("classification", "regression"):
            raise ContractError(
                f"the contract's task is {self.task!r}; expected 'classification' or 'regression'"
            )
        if self.target is not None and self.target in names:
            raise ContractError(f"the target {self.target!r} is also listed as a feature")

    @property
    def pii_masks(self) -> dict[str, str]:
        """The pii features and how the prediction log keeps each ('hash' or 'redact')."""
        return {f.name: f.pii_mask for f in self.features if f.pii}

    @functools.cached_property
    def names(self) -> tuple[str, ...]:
        """The feature names in order (computed once: the hot path asks for them per request)."""
        return tuple(f.name for f in self.features)

    def feature(self, name: str) -> Feature:
        """The feature called `name`.

        Raises:
            ContractError: no such feature.
        """
        for f in self.features:
            if f.name == name:
                return f
        raise ContractError(f"the contract has no feature {name!r}; it has {list(self.names)}")

    def replace_feature(self, name: str, **changes: Any) -> Contract:
        """A copy with one feature changed."""
        self.feature(name)
        features = tuple(replace(f, **changes) if f.name == name else f for f in self.features)
        return replace(self, features=features)

    def to_dict(self) -> dict[str, Any]:
        """The contract as plain data (what YAML and JSON show)."""
        data: dict[str, Any] = {"task": self.task}
        if self.target is not None:
            data["target"] = self.target
        if self.classes is not None:
            data["classes"] = list(self.classes)
        data["features"] = [f.to_dict() for f in self.features]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Contract:
        """Read a contract written by `to_dict` (or by hand).

        Raises:
            ContractError: the data is not a contract; the message names the bad entry.
        """
        if not isinstance(data, Mapping):
            raise ContractError(f"a contract is {type(data).__name__}; expected a mapping")
        unknown = sorted(set(data) - {"task", "target", "classes", "features"})
        if unknown:
            raise ContractError(
                f"the contract has unknown keys {unknown}; expected task, target, classes, features"
            )
        features = data.get("features")
        if not isinstance(features, list) or not features:
            raise ContractError("the contract has no 'features' list; expected at least one feature")
        classes = data.get("classes")
        return cls(
            features=tuple(Feature.from_dict(f) for f in features),
            task=cast(Task, data.get("task")),
            target=data.get("target"),
            classes=None if classes is None else tuple(classes),
        )

    def validate(self, data: Batch) -> Validation:
        """Check every value of every feature; coerce, impute and clip as the policies say.

        Args:
            data: the input rows; extra columns are reported and dropped.

        Returns:
            The coerced batch in contract order and every violation found.
        """
        n = data.n_rows
        rejected = np.zeros(n, dtype=bool)
        violations: list[Violation] = []
        clean, counts = self._clean_numeric(data)
        columns: dict[str, Array] = {}
        for feature in self.features:
            if feature.name in clean:
                columns[feature.name] = clean[feature.name]
                continue
            raw = data.columns.get(feature.name)
            if raw is None:
                kind = f"{article(str(feature.dtype))} {feature.dtype}"
                why = f"the column is missing; expected {kind} column named {feature.name!r}"
                violations.append(Violation(None, feature.name, None, why))
                rejected[:] = True
                columns[feature.name] = np.full(n, None, dtype=object)
                continue
            check = FeatureCheck(feature, raw)
            columns[feature.name] = check.run()
            rejected |= check.rejected
            violations.extend(check.violations)
            if check.counts:
                counts[feature.name] = check.counts
        known = set(self.names) | ({self.target} if self.target else set())
        extra = tuple(c for c in data.names if c not in known)
        violations.sort(key=lambda v: -1 if v.row is None else v.row)
        # Numbers read as one matrix and passed as they came stay that matrix for the model.
        block = data.block
        if block is not None and (
            data.names != self.names or any(columns[n] is not data.columns[n] for n in self.names)
        ):
            block = None
        return Validation(Batch(columns, n, block=block), tuple(violations), counts, extra, rejected)

    @functools.cached_property
    def _numeric_plan(self) -> tuple[tuple[Feature, ...], Array, Array, Array]:
        """The numeric features with their bounds and integer mask, computed once per contract."""
        numeric = tuple(f for f in self.features if f.is_numeric)
        lo = np.array([-math.inf if f.min is None else f.min for f in numeric])
        hi = np.array([math.inf if f.max is None else f.max for f in numeric])
        ints = np.array([f.dtype is DType.INT for f in numeric], dtype=bool)
        return numeric, lo, hi, ints

    @functools.cached_property
    def _numeric_names(self) -> tuple[str, ...]:
        """The numeric features' names, in order."""
        return tuple(f.name for f in self._numeric_plan[0])

    def _clean_numeric(self, data: Batch) -> tuple[dict[str, Array], dict[str, dict[str, int]]]:
        """The numeric columns with nothing to reject, clip or impute, checked in one pass, and
        the out-of-range values counted on the way.

        The per-feature checks cost a few microseconds each whatever the row count; on the
        serving hot path (a handful of rows, tens of features) that dominated. Numeric columns
        that arrive as numbers are stacked and checked together for missing, fractional (for
        integer features) and out-of-range values; any column with one of those goes through
        the full per-feature check, so the outcome is exactly the same. In large batches a
        column whose only finding is values out of range, under the policy 'allow', is counted
        here rather than checked again.
        """
        numeric, lo, hi, ints = self._numeric_plan
        columns = data.columns
        block = data.block
        if block is not None and not ints.any() and len(numeric) > 1 and data.names == self._numeric_names:
            # Every feature a float, read as one matrix (serving's JSON numbers): one check, no copy.
            odd = ~np.isfinite(block) | (block < lo) | (block > hi)
            if not odd.any():
                return dict(columns), {}
        if all(f.name in columns and columns[f.name].dtype.kind in "fiu" for f in numeric):
            features = numeric
        else:
            keep = [
                j for j, f in enumerate(numeric) if f.name in columns and columns[f.name].dtype.kind in "fiu"
            ]
            features = tuple(numeric[j] for j in keep)
            lo, hi, ints = lo[keep], hi[keep], ints[keep]
        counts: dict[str, dict[str, int]] = {}
        if len(features) < 2:
            return {}, counts
        raws = [columns[f.name] for f in features]
        if data.n_rows >= COLUMNWISE_ROWS:
            # Large batches (batch prediction): a min and a max per column cost less than
            # stacking every column into one matrix first.
            outside = [
                count_outside(raw, lo[j], hi[j], integer=bool(ints[j]), allow=f.on_out_of_range == "allow")
                for j, (f, raw) in enumerate(zip(features, raws, strict=True))
            ]
            dirty = np.array([n < 0 for n in outside])
            counts = {f.name: {"out_of_range": n} for f, n in zip(features, outside, strict=True) if n > 0}
        else:
            block = data.block if data.names == tuple(f.name for f in features) else None
            matrix = block if block is not None else np.column_stack(raws).astype(np.float64, copy=False)
            # Comparisons with NaN are simply False; numpy does not warn for them. Missing and
            # infinite values both take the full check.
            odd = ~np.isfinite(matrix) | (matrix < lo) | (matrix > hi)
            if ints.any():
                whole = matrix[:, ints]
                odd[:, ints] |= (
                    (whole != np.floor(whole)) | (whole >= INT64_FLOAT_END) | (whole <= -INT64_FLOAT_END)
                )
            dirty = np.asarray(odd.any(axis=0))
        clean: dict[str, Array] = {}
        for j, f in enumerate(features):
            if dirty[j]:
                continue
            raw = raws[j]
            if f.dtype is DType.INT:
                clean[f.name] = raw.astype(np.int64, copy=False) if raw.dtype.kind in "iu" else as_whole(raw)
            else:
                clean[f.name] = raw.astype(np.float64, copy=False)
        return clean, counts


def _check_choice(where: str, key: str, value: object, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ContractError(f"{where} has {key}={value!r}; expected one of {list(allowed)}")


def _as_number(name: object, key: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ContractError(f"feature {name!r} has {key}={value!r}; expected a number")
    return value


def example_row(contract: Contract) -> dict[str, Any]:
    """A row the contract accepts: mid-range numbers, first categories, false, empty text."""
    row: dict[str, Any] = {}
    for f in contract.features:
        if f.categories:
            row[f.name] = f.categories[0]
        elif f.dtype is DType.BOOL:
            row[f.name] = False
        elif f.dtype is DType.STRING:
            row[f.name] = ""
        else:
            lo = f.min if f.min is not None else (f.max if f.max is not None else 0.0)
            hi = f.max if f.max is not None else lo
            value = (lo + hi) / 2.0
            row[f.name] = round(value) if f.dtype is DType.INT else value
    return row
