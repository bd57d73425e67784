"""The checks of one contract feature over one column, vectorised with numpy.

`Contract.validate` runs a `FeatureCheck` per feature that needs one (`count_outside` tells when a
numeric column needs none), and collects their violations and counts.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from shipyard.core import objects
from shipyard.core.batch import Array
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
from shipyard.core.validation import PII, Violation, show_value

if TYPE_CHECKING:
    from shipyard.core.contract import Feature

__all__ = ["COLUMNWISE_ROWS", "FeatureCheck", "article", "as_whole", "count_outside"]

BEYOND_INT64 = (
    f"outside the range of an integer feature (int64) [{INT64_RANGE[0]}, {INT64_RANGE[1]}]; "
    "a larger value cannot reach the model unchanged"
)
# Most models fail on infinity, or answer from a number they were never trained near.
INFINITE = "expected a finite number, not infinity"
COLUMNWISE_ROWS = 4096  # from this many rows, numeric columns are checked one by one


class FeatureCheck:
    """The checks of one feature over one column; vectorised with numpy."""

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
                self.reject(beyond, BEYOND_INT64)
                values = np.where(beyond, 0.0, values)  # rejected: never cast, never predicted
        elif f.dtype is DType.FLOAT and values.dtype.kind == "f":
            infinite = np.isinf(values) & ~wrong
            if infinite.any():
                self.reject(infinite, INFINITE)
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
            self.reject(outside, f"outside the contract range [{show_value(f.min)}, {show_value(f.max)}]")
        elif f.on_out_of_range == "clip":
            self.count("clipped", outside)
            values = np.where(outside, np.clip(values, lo, hi), values)
        else:
            self.count("out_of_range", outside)
        return values

    def _categories(self, values: Array, present: Array) -> None:
        f = self.feature
        assert f.categories is not None
        known = objects.is_in(values, f.categories)
        unseen = present & ~known
        if not unseen.any():
            return
        if f.on_unseen_category == "reject":
            shown = list(f.categories[:10]) + (["..."] if len(f.categories) > 10 else [])
            listed = f"({len(f.categories)}, not shown: pii)" if f.pii else str(shown)
            self.reject(unseen, f"not one of the contract's categories {listed}")
        else:
            self.count("unseen_category", unseen)


def count_outside(raw: Array, lo: float, hi: float, *, integer: bool, allow: bool) -> int:
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


def as_whole(raw: Array) -> Array:
    """A float column known to hold whole numbers, as int64."""
    return raw.astype(np.int64)


def article(word: str) -> str:
    """'a' or 'an' before `word`."""
    return "an" if word[:1] in "aeiou" else "a"
