"""The feature contract: what a model accepts and returns, inferred from training data.

A contract lists each feature's dtype, whether it may be missing, its observed range and
categories, a PII flag, and a policy for each kind of violation. `Contract.validate` checks a
`Batch` column by column (vectorised, no per-row Python loop) and reports *every* violation.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any, Literal, cast

import numpy as np
import pandas as pd

from shipyard.core.batch import Array, Batch, Label, Task
from shipyard.core.dtypes import (
    DTYPE_WORDS,
    INT64_FLOAT_END,
    INT64_RANGE,
    DType,
    beyond_int64,
    coerce,
    finish,
    plain,
)
from shipyard.core.echo import capped, echo
from shipyard.errors import ContractError, ContractViolationError

__all__ = [
    "PII",
    "Contract",
    "Feature",
    "Validation",
    "Violation",
]

MissingAction = Literal["reject", "impute", "pass"]
RangeAction = Literal["reject", "clip", "allow"]
CategoryAction = Literal["reject", "allow"]

_MISSING_ACTIONS: tuple[str, ...] = ("reject", "impute", "pass")
_RANGE_ACTIONS: tuple[str, ...] = ("reject", "clip", "allow")
_CATEGORY_ACTIONS: tuple[str, ...] = ("reject", "allow")
_SHOWN_VIOLATIONS = 10
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


@dataclass(frozen=True, slots=True)
class Violation:
    """One broken rule: the row (None for the whole column), the feature, the value, the reason."""

    row: int | None
    feature: str
    value: Any
    reason: str

    def __str__(self) -> str:
        if self.row is None:
            return f"feature {self.feature!r}: {self.reason}"
        return f"feature {self.feature!r} of row {self.row} is {_show(self.value)}: {self.reason}"

    def to_dict(self) -> dict[str, Any]:
        """The violation as plain JSON-safe data."""
        value = capped(plain(self.value))
        return {"row": self.row, "feature": self.feature, "value": value, "reason": self.reason}


@dataclass(frozen=True)
class Validation:
    """The outcome of `Contract.validate`.

    Args:
        batch: the features in contract order, coerced, imputed and clipped as the policies say.
        violations: every rejection, with row, feature, value and reason.
        counts: per feature, how many values were allowed-and-counted, clipped or imputed, by kind.
        extra_columns: input columns the contract does not know (reported, then dropped).
    """

    batch: Batch
    violations: tuple[Violation, ...]
    counts: Mapping[str, Mapping[str, int]]
    extra_columns: tuple[str, ...]
    _rejected: Array = field(repr=False)

    @property
    def ok(self) -> bool:
        """True when no row was rejected."""
        return not self.violations

    @property
    def rejected_rows(self) -> Array:
        """The sorted positions of the rows with at least one rejection."""
        return np.flatnonzero(self._rejected)

    @property
    def accepted_rows(self) -> Array:
        """The sorted positions of the rows without any rejection."""
        return np.flatnonzero(~self._rejected)

    def part(self, start: int, stop: int) -> Validation:
        """The validation of rows [start, stop) alone, renumbered from 0 (one caller's share of a batch)."""
        rows = np.arange(start, stop)
        violations = tuple(
            v if v.row is None else Violation(v.row - start, v.feature, v.value, v.reason)
            for v in self.violations
            if v.row is None or start <= v.row < stop
        )
        return Validation(
            self.batch.take(rows), violations, self.counts, self.extra_columns, self._rejected[start:stop]
        )

    def reasons_by_row(self, *, offset: int = 0) -> dict[int, list[str]]:
        """Each rejected row's reasons, for quarantining bad rows with their cause.

        Args:
            offset: added to the row numbers the reasons name (the batch's first row in its file);
                the keys stay the rows' positions in this batch.
        """
        reasons: dict[int, list[str]] = {}
        for v in self.violations:
            rows = self.rejected_rows.tolist() if v.row is None else [v.row]
            for row in rows:
                shown = (
                    v
                    if v.row is None or not offset
                    else Violation(v.row + offset, v.feature, v.value, v.reason)
                )
                reasons.setdefault(row, []).append(str(shown))
        return reasons

    def message(self, where: str | None = None) -> str:
        """A readable summary: the count, the first violations, and what to do."""
        rows = int(self._rejected.sum())
        subject = f"the contract of {where}" if where else "the contract"
        lines = [f"{len(self.violations)} violation(s) of {subject} in {rows} of {self.batch.n_rows} row(s):"]
        absent = [v.feature for v in self.violations if v.row is None]
        if absent:
            lines.append(f"  missing column(s), expected by the contract: {absent}")
        by_row = [v for v in self.violations if v.row is not None]
        lines += [f"  {v}" for v in by_row[:_SHOWN_VIOLATIONS]]
        if len(by_row) > _SHOWN_VIOLATIONS:
            lines.append(f"  ... and {len(by_row) - _SHOWN_VIOLATIONS} more")
        fix = f"'shipyard contract edit {where}'" if where else "a contract edit"
        lines.append(f"fix the input, or change the feature's policy with {fix}")
        return "\n".join(lines)

    def raise_if_invalid(self, where: str | None = None) -> None:
        """Raise when any row was rejected.

        Raises:
            ContractViolationError: with every violation attached.
        """
        if self.violations:
            raise ContractViolationError(self.message(where), self.violations)


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

    @property
    def names(self) -> tuple[str, ...]:
        """The feature names in order."""
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
                kind = f"{_article(str(feature.dtype))} {feature.dtype}"
                why = f"the column is missing; expected {kind} column named {feature.name!r}"
                violations.append(Violation(None, feature.name, None, why))
                rejected[:] = True
                columns[feature.name] = np.full(n, None, dtype=object)
                continue
            check = _FeatureCheck(feature, raw)
            columns[feature.name] = check.run()
            rejected |= check.rejected
            violations.extend(check.violations)
            if check.counts:
                counts[feature.name] = check.counts
        known = set(self.names) | ({self.target} if self.target else set())
        extra = tuple(c for c in data.names if c not in known)
        violations.sort(key=lambda v: -1 if v.row is None else v.row)
        return Validation(Batch(columns, n), tuple(violations), counts, extra, rejected)

    @functools.cached_property
    def _numeric_plan(self) -> tuple[tuple[Feature, ...], Array, Array, Array]:
        """The numeric features with their bounds and integer mask, computed once per contract."""
        numeric = tuple(f for f in self.features if f.is_numeric)
        lo = np.array([-math.inf if f.min is None else f.min for f in numeric])
        hi = np.array([math.inf if f.max is None else f.max for f in numeric])
        ints = np.array([f.dtype is DType.INT for f in numeric], dtype=bool)
        return numeric, lo, hi, ints

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
        if data.n_rows >= _COLUMNWISE_ROWS:
            # Large batches (batch prediction): a min and a max per column cost less than
            # stacking every column into one matrix first.
            outside = [
                _outside(raw, lo[j], hi[j], integer=bool(ints[j]), allow=f.on_out_of_range == "allow")
                for j, (f, raw) in enumerate(zip(features, raws, strict=True))
            ]
            dirty = np.array([n < 0 for n in outside])
            counts = {f.name: {"out_of_range": n} for f, n in zip(features, outside, strict=True) if n > 0}
        else:
            matrix = np.column_stack(raws).astype(np.float64, copy=False)
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
                clean[f.name] = raw.astype(np.int64, copy=False) if raw.dtype.kind in "iu" else _whole(raw)
            else:
                clean[f.name] = raw.astype(np.float64, copy=False)
        return clean, counts


class _FeatureCheck:
    """The checks of one feature over one column; vectorised with numpy and pandas."""

    def __init__(self, feature: Feature, raw: Array) -> None:
        self.feature = feature
        self.raw = raw
        self.rejected = np.zeros(len(raw), dtype=bool)
        self.violations: list[Violation] = []
        self.counts: dict[str, int] = {}

    def reject(self, mask: Array, reason: str) -> None:
        rows = np.flatnonzero(mask & ~self.rejected)
        self.violations.extend(
            Violation(int(r), self.feature.name, PII if self.feature.pii else plain(self.raw[r]), reason)
            for r in rows
        )
        self.rejected |= mask

    def count(self, kind: str, mask: Array) -> None:
        hits = int(np.count_nonzero(mask & ~self.rejected))
        if hits:
            self.counts[kind] = self.counts.get(kind, 0) + hits

    def run(self) -> Array:
        f = self.feature
        values, missing, wrong = coerce(f.dtype, self.raw)
        if wrong.any():
            self.reject(wrong, f"expected {DTYPE_WORDS[f.dtype]}")
        if f.dtype is DType.INT:
            beyond = beyond_int64(values, ~missing & ~wrong)
            if beyond.any():
                self.reject(beyond, _BEYOND_INT64)
                values = np.where(beyond, 0.0, values)  # rejected: never cast, never predicted
        elif f.dtype is DType.FLOAT and values.dtype.kind == "f":
            infinite = np.isinf(values) & ~wrong
            if infinite.any():
                self.reject(infinite, _INFINITE)
        if missing.any():
            if f.on_missing == "reject":
                self.reject(missing, "the value is missing and the feature does not allow that")
            elif f.on_missing == "impute":
                self.count("imputed", missing)
                values = values.copy()
                values[missing] = f.impute_value
                missing = np.zeros_like(missing)
            else:
                self.count("missing", missing)
        present = ~missing & ~self.rejected
        if f.is_numeric and (f.min is not None or f.max is not None):
            values = self._range(values, present)
        if f.categories is not None:
            self._categories(values, present)
        return finish(f.dtype, values, missing & ~self.rejected)

    def _range(self, values: Array, present: Array) -> Array:
        f = self.feature
        lo = -math.inf if f.min is None else f.min
        hi = math.inf if f.max is None else f.max
        with np.errstate(invalid="ignore"):
            outside = present & ((values < lo) | (values > hi))
        if not outside.any():
            return values
        if f.on_out_of_range == "reject":
            self.reject(outside, f"outside the contract range [{_show(f.min)}, {_show(f.max)}]")
        elif f.on_out_of_range == "clip":
            self.count("clipped", outside)
            values = np.where(outside, np.clip(values, lo, hi), values)
        else:
            self.count("out_of_range", outside)
        return values

    def _categories(self, values: Array, present: Array) -> None:
        f = self.feature
        assert f.categories is not None
        known = pd.Series(values, dtype=object).isin(list(f.categories)).to_numpy()
        unseen = present & ~known
        if not unseen.any():
            return
        if f.on_unseen_category == "reject":
            shown = list(f.categories[:10]) + (["..."] if len(f.categories) > 10 else [])
            listed = f"({len(f.categories)}, not shown: pii)" if f.pii else str(shown)
            self.reject(unseen, f"not one of the contract's categories {listed}")
        else:
            self.count("unseen_category", unseen)


PII = "<pii>"  # what error messages and rejects show in place of a pii feature's value
_BEYOND_INT64 = (
    f"outside the range of an integer feature (int64) [{INT64_RANGE[0]}, {INT64_RANGE[1]}]; "
    "a larger value cannot reach the model unchanged"
)
# Most models fail on infinity, or answer from a number they were never trained near.
_INFINITE = "expected a finite number, not infinity"
_COLUMNWISE_ROWS = 4096  # from this many rows, numeric columns are checked one by one


def _outside(raw: Array, lo: float, hi: float, *, integer: bool, allow: bool) -> int:
    """How many values of a numeric column are out of range, or -1 when it needs the full check.

    The full check is needed for a missing or (integer feature) fractional value, and for a
    value out of range unless the policy is to `allow` (and count) those.
    """
    if raw.size == 0:
        return 0
    low, high = raw.min(), raw.max()  # NaN if any value is NaN
    if raw.dtype.kind == "f" and not (np.isfinite(low) and np.isfinite(high)):
        return -1  # a missing or infinite value
    if (
        integer
        and raw.dtype.kind == "f"
        and (high >= INT64_FLOAT_END or low <= -INT64_FLOAT_END or np.any(raw != np.floor(raw)))
    ):
        return -1
    if integer and raw.dtype.kind == "u" and high > INT64_RANGE[1]:
        return -1
    if low >= lo and high <= hi:
        return 0
    if not allow:
        return -1
    return int(np.count_nonzero(raw < lo) + np.count_nonzero(raw > hi))


def _whole(raw: Array) -> Array:
    """A float column known to hold whole numbers, as int64."""
    return raw.astype(np.int64)


def _check_choice(where: str, key: str, value: object, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ContractError(f"{where} has {key}={value!r}; expected one of {list(allowed)}")


def _as_number(name: object, key: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ContractError(f"feature {name!r} has {key}={value!r}; expected a number")
    return value


def _show(value: Any) -> str:
    value = plain(value)
    if value is None:
        return "missing"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return echo(value)


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"
