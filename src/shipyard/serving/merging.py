"""Requests merged into one model call: each request's columns read as rows before it queues, the
merged columns of a call, and the policy that rejects a request whole when one of its rows fails."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from shipyard.core.batch import Array, Batch, MatrixColumns
from shipyard.core.contract import Contract, Validation
from shipyard.errors import ContractViolationError, InputError, ShipyardError
from shipyard.registry.loaded import LoadedModel
from shipyard.serving.served import Columns, Pending

__all__ = ["WholeRequests", "as_batch", "merge", "one_value_per_row", "violation"]


class WholeRequests:
    """The rejection policy of merged requests: a request with a failing row is rejected whole, with
    a violation that names its own rows (numbered from its first); the others are predicted.

    Args:
        jobs: the merged requests, in the order their rows were merged.
        where: the version, as violations name it.
    """

    def __init__(self, jobs: Sequence[Pending], where: str) -> None:
        self.jobs = jobs
        self.where = where
        self.offsets: list[int] = list(itertools.accumulate((j.n_rows for j in jobs), initial=0))
        self.good: list[int] = []  # the requests predicted, by position
        self.rejected: list[tuple[Pending, ShipyardError]] = []
        self.validation: Validation | None = None

    def __call__(self, validation: Validation) -> Array:
        self.validation = validation
        offsets = self.offsets
        if validation.ok:
            self.good = list(range(len(self.jobs)))
            return np.arange(offsets[-1], dtype=np.intp)
        bad = validation.rejected_rows
        for i, job in enumerate(self.jobs):
            start, stop = offsets[i], offsets[i + 1]
            if np.any((bad >= start) & (bad < stop)):
                part = validation.part(start, stop)
                self.rejected.append((job, violation(part.message(self.where), part)))
            else:
                self.good.append(i)
        if not self.good:
            return np.empty(0, dtype=np.intp)
        return np.concatenate([np.arange(offsets[i], offsets[i + 1], dtype=np.intp) for i in self.good])


def one_value_per_row(
    loaded: LoadedModel, columns: Columns, n_rows: int
) -> Mapping[str, Sequence[Any] | Array]:
    """The contract's columns of one request, each holding one value per row.

    Read before the request is queued, so a request of the wrong shape fails alone. A JSON list of
    the right length is kept as it came: it is read into an array with the rest of its model call
    (`merge`), once per call rather than once per request. Anything else is read into an array
    here. A list or an object where one value belongs stays one value, for the contract to refuse
    at its row and feature with the others of the merged call.

    Raises:
        InputError: a column does not hold `n_rows` values.
    """
    names = loaded.contract.names
    if type(columns) is MatrixColumns and columns.matrix.shape[0] == n_rows and tuple(columns) == names:
        return columns  # one 2-D tensor of every feature in order: merged as a matrix
    picked: dict[str, Sequence[Any] | Array] = {}
    others: dict[str, Sequence[Any] | Array] = {}
    for name in names:
        if name not in columns:
            continue
        values = columns[name]
        if type(values) is list and len(values) == n_rows:
            picked[name] = values
        else:
            others[name] = values
    if others:
        for name, array in Batch.from_columns(others).columns.items():
            if len(array) != n_rows:
                raise InputError(
                    f"feature {name!r} has {len(array)} value(s) for {n_rows} row(s); "
                    "expected one value per row"
                )
            picked[name] = array
    return picked


def as_batch(columns: Mapping[str, Sequence[Any] | Array], n_rows: int) -> Batch:
    """One request's columns (`one_value_per_row`'s) as a batch of `n_rows` rows, even with none."""
    return Batch(dict(Batch.from_columns(columns).columns), n_rows)


def merge(contract: Contract, jobs: Sequence[Pending]) -> Batch:
    """The contract's columns of every request, end to end, types kept as the callers sent them."""
    names = contract.names
    if all(type(j.columns) is MatrixColumns for j in jobs):  # each a 2-D tensor (`one_value_per_row`)
        parts = [j.columns.matrix for j in jobs]  # type: ignore[attr-defined]
        return Batch.from_matrix(names, parts[0] if len(parts) == 1 else np.concatenate(parts))
    if all(type(j.columns[n]) is list for j in jobs for n in names):
        # JSON numbers with a fraction, in every feature: one matrix, read once and kept whole.
        if all(j.n_rows == 1 for j in jobs):  # rows as they come: the matrix row-major at once
            rows = [[j.columns[n][0] for n in names] for j in jobs]
            if set(map(type, itertools.chain.from_iterable(rows))) == {float}:
                return Batch.from_matrix(names, np.array(rows, dtype=np.float64))
            lists = [list(column) for column in zip(*rows, strict=True)]
        else:
            lists = [list(itertools.chain.from_iterable(j.columns[n] for j in jobs)) for n in names]
            if set(map(type, itertools.chain.from_iterable(lists))) == {float}:
                return Batch.from_matrix(names, np.array(lists, dtype=np.float64).T)
        return Batch.from_columns(dict(zip(names, lists, strict=True)))
    if len(jobs) == 1:
        job = jobs[0]
        return Batch.from_columns({n: job.columns[n] for n in names})
    columns: dict[str, Sequence[Any] | Array] = {}
    for n in names:
        parts = [j.columns[n] for j in jobs]
        if all(isinstance(p, np.ndarray) for p in parts):
            kinds = {p.dtype.kind for p in parts if isinstance(p, np.ndarray)}
            if len(kinds) == 1:
                columns[n] = np.concatenate(parts)
                continue
        columns[n] = list(itertools.chain.from_iterable(_as_list(p) for p in parts))
    return Batch.from_columns(columns)


def _as_list(values: Sequence[Any] | Array) -> Sequence[Any]:
    return values.tolist() if isinstance(values, np.ndarray) else values


def violation(message: str, validation: Validation) -> ContractViolationError:
    """The error that refuses a request by `validation`, with `message` as its text."""
    return ContractViolationError(message, validation.violations)
