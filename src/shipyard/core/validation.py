"""What `Contract.validate` gives back: every violation, and the rows it accepts and rejects."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from shipyard.core.batch import Array, Batch
from shipyard.core.dtypes import plain
from shipyard.core.echo import capped, echo
from shipyard.errors import ContractViolationError

__all__ = ["PII", "Validation", "Violation", "show_value"]

PII = "<pii>"  # what error messages and rejects show in place of a pii feature's value
_SHOWN_VIOLATIONS = 10


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
        return f"feature {self.feature!r} of row {self.row} is {show_value(self.value)}: {self.reason}"

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


def show_value(value: Any) -> str:
    """A value as a message shows it: whole floats as integers, missing as such, long text capped."""
    value = plain(value)
    if value is None:
        return "missing"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return echo(value)
