"""The columnar rows every path carries (`Batch`) and what a model returns (`Predictions`)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt

from shipyard.errors import InputError

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

__all__ = ["PROBA_PREFIX", "Batch", "Label", "Predictions", "Task"]

PROBA_PREFIX = "proba_"  # the column of each class's probability: proba_<class>

Task = Literal["classification", "regression"]
Label = str | int | float | bool
Array = npt.NDArray[Any]


def _column_from_pandas(series: pd.Series[Any]) -> Array:
    import pandas as pd

    dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype) or pd.api.types.is_string_dtype(dtype):
        values = series.astype(object).to_numpy(dtype=object, copy=True)
        values[pd.isna(values)] = None
        return values
    if pd.api.types.is_extension_array_dtype(dtype):
        if pd.api.types.is_bool_dtype(dtype) and not series.hasnans:
            return series.to_numpy(dtype=bool)
        if pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype):
            if pd.api.types.is_integer_dtype(dtype) and not series.hasnans:
                return series.to_numpy(dtype=np.int64)
            return series.to_numpy(dtype=np.float64, na_value=np.nan)
        values = series.to_numpy(dtype=object, copy=True)
        values[pd.isna(values)] = None
        return values
    return series.to_numpy()


class MatrixColumns(dict[str, Array]):
    """Columns that are the columns of one float64 matrix (rows x columns, row-major), which
    travels with them: a request's single 2-D tensor, read once, becomes its model call's
    matrix (`Batch.from_matrix`) without being split into columns and stacked again."""

    __slots__ = ("matrix",)

    def __init__(self, names: Sequence[str], matrix: Array) -> None:
        super().__init__(zip(names, matrix.T, strict=True))
        self.matrix = matrix


@dataclass(frozen=True, slots=True)
class Batch:
    """Rows held as named numpy columns of equal length, in a fixed order.

    Args:
        columns: column name to a 1-D array; object arrays hold strings and `None` for missing.
        n_rows: the number of rows (needed when there are no columns).
        block: a float64 matrix (rows x columns, row-major) whose columns are `columns`, in order,
            when the batch was read as one (`from_matrix`): `to_numpy` then hands it over as it is.
    """

    columns: Mapping[str, Array]
    n_rows: int
    _frame: list[Any] = field(default_factory=list, repr=False, compare=False)
    block: Array | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.block is not None:
            return  # the columns of one matrix (`from_matrix`): one length and one dimension each
        for name, column in self.columns.items():
            if column.ndim != 1 or len(column) != self.n_rows:
                raise InputError(
                    f"column {name!r} has shape {column.shape}; expected {self.n_rows} values "
                    "like every other column"
                )

    @classmethod
    def from_columns(cls, columns: Mapping[str, Sequence[Any] | Array]) -> Batch:
        """Build a batch from column name to values (lists or arrays).

        Raises:
            InputError: the columns differ in length or are not one-dimensional.
        """
        arrays = {str(k): _as_array(v) for k, v in columns.items()}
        lengths = {len(a) for a in arrays.values()}
        if len(lengths) > 1:
            shown = ", ".join(f"{k}={len(a)}" for k, a in arrays.items())
            raise InputError(f"columns differ in length ({shown}); expected one length for all")
        return cls(arrays, lengths.pop() if lengths else 0)

    @classmethod
    def from_matrix(cls, names: Sequence[str], matrix: Array) -> Batch:
        """A batch whose columns are the columns of a float64 matrix (rows x columns), kept whole
        for `to_numpy`: numbers read once into one matrix are never stacked again."""
        matrix = np.ascontiguousarray(matrix, dtype=np.float64)
        if matrix.ndim != 2 or matrix.shape[1] != len(names):
            raise InputError(
                f"a matrix of shape {matrix.shape} cannot hold the {len(names)} columns {list(names)}"
            )
        matrix.flags.writeable = False  # its columns are the batch's: nobody writes through either
        return cls(dict(zip(map(str, names), matrix.T, strict=True)), matrix.shape[0], block=matrix)

    @classmethod
    def from_records(cls, records: Sequence[Mapping[str, Any]]) -> Batch:
        """Build a batch from a list of row objects; a key absent from a row is a missing value.

        Raises:
            InputError: a record is not a mapping.
        """
        names: dict[str, None] = {}
        for i, record in enumerate(records):
            if not isinstance(record, Mapping):
                raise InputError(f"row {i} is {type(record).__name__}; expected an object of feature: value")
            names.update(dict.fromkeys(record))
        columns = {str(n): _as_array([r.get(n) for r in records]) for n in names}
        return cls(columns, len(records))

    @classmethod
    def from_pandas(cls, frame: pd.DataFrame) -> Batch:
        """Build a batch from a DataFrame, keeping its column order."""
        columns = {str(name): _column_from_pandas(frame[name]) for name in frame.columns}
        return cls(columns, len(frame))

    @classmethod
    def from_arrow(cls, table: pa.Table | pa.RecordBatch) -> Batch:
        """Build a batch from a pyarrow Table or RecordBatch."""
        import pyarrow as pa
        import pyarrow.types as pat

        columns: dict[str, Array] = {}
        for name, column in zip(table.column_names, table.columns, strict=True):
            chunked = column if isinstance(column, pa.ChunkedArray) else pa.chunked_array([column])
            if pat.is_dictionary(chunked.type):
                chunked = chunked.cast(chunked.type.value_type)
            # Text becomes an object array of str and None (in C: twice as fast as a list).
            columns[name] = chunked.to_numpy()
        return cls(columns, table.num_rows)

    @classmethod
    def coerce(cls, data: Any) -> Batch:
        """Accept a Batch, DataFrame, Arrow table, list of records or mapping of columns.

        Raises:
            InputError: the object is none of those.
        """
        if isinstance(data, Batch):
            return data
        module = type(data).__module__
        if module.startswith("pandas") and hasattr(data, "columns"):
            return cls.from_pandas(data)
        if module.startswith("pyarrow") and hasattr(data, "column_names"):
            return cls.from_arrow(data)
        if isinstance(data, Mapping):
            return cls.from_columns(data)
        if isinstance(data, Sequence) and not isinstance(data, str | bytes):
            return cls.from_records(data)
        raise InputError(
            f"cannot read rows from {type(data).__name__}; expected a pandas DataFrame, a pyarrow "
            "Table, a list of row objects or a mapping of column name to values"
        )

    @property
    def names(self) -> tuple[str, ...]:
        """The column names in order."""
        return tuple(self.columns)

    def select(self, names: Iterable[str]) -> Batch:
        """The batch with only `names`, in that order."""
        return Batch({n: self.columns[n] for n in names}, self.n_rows)

    def take(self, rows: Array | Sequence[int]) -> Batch:
        """The batch with only the rows at the given positions."""
        index = np.asarray(rows, dtype=np.intp)
        return Batch({n: c[index] for n, c in self.columns.items()}, len(index))

    def slice(self, start: int, stop: int) -> Batch:
        """Rows [start, stop) as views of this batch's columns (no copy)."""
        return Batch({n: c[start:stop] for n, c in self.columns.items()}, stop - start)

    @staticmethod
    def concat(parts: Sequence[Batch]) -> Batch:
        """The rows of `parts` end to end (each with the columns of the first); one part is returned as is."""
        if len(parts) == 1:
            return parts[0]
        names = parts[0].names
        return Batch(
            {n: np.concatenate([p.columns[n] for p in parts]) for n in names}, sum(p.n_rows for p in parts)
        )

    def to_numpy(self, dtype: npt.DTypeLike = np.float64) -> Array:
        """All columns as one 2-D array of `dtype` (rows x columns), rows contiguous: what models
        that walk rows, such as trees, read fastest."""
        if not self.columns:
            return np.empty((self.n_rows, 0), dtype=dtype)
        if self.block is not None and np.dtype(dtype) == np.float64:
            return self.block  # read-only: the batch's own columns
        return np.column_stack([c.astype(dtype, copy=False) for c in self.columns.values()])

    def to_pandas(self) -> pd.DataFrame:
        """The batch as a DataFrame (built once, then reused)."""
        if not self._frame:
            import pandas as pd

            self._frame.append(pd.DataFrame(dict(self.columns), copy=False))
        frame: pd.DataFrame = self._frame[0]
        return frame

    def to_arrow(self) -> pa.Table:
        """The batch as a pyarrow Table."""
        import pyarrow as pa

        return pa.table({n: pa.array(c, from_pandas=True) for n, c in self.columns.items()})


_NUMBERS = frozenset((float, int))
_TEXT_OR_MISSING = frozenset((str, bytes, type(None)))


def _as_array(values: Sequence[Any] | Array) -> Array:
    if isinstance(values, np.ndarray):
        array = values
    else:
        items = values if type(values) is list else list(values)
        kinds = set(map(type, items))
        if kinds <= _NUMBERS:  # JSON's numbers: one pass over the types, then numpy's own reading
            array = np.asarray(items)
        elif kinds & _TEXT_OR_MISSING or any(isinstance(v, str | bytes) for v in items):
            array = np.empty(len(items), dtype=object)
            array[:] = items
        else:
            try:
                array = np.asarray(items)
            except (ValueError, TypeError):
                array = _objects(items)
            if array.ndim != 1:
                # Lists or objects where one value belongs (JSON `[[1], [2]]`): numpy read them
                # as another dimension. Kept as values, they are the contract's to refuse by row.
                array = _objects(items)
            # numpy turns [True, 2.5] into [1.0, 2.5]; keep the booleans visible to the contract.
            if array.dtype.kind in "US" or (array.dtype.kind in "iuf" and bool in set(map(type, items))):
                array = np.empty(len(items), dtype=object)
                array[:] = items
    if array.ndim != 1:
        raise InputError(f"a column has shape {array.shape}; expected one value per row")
    return array


def _objects(items: list[Any]) -> Array:
    """`items` as a one-dimensional object array, each item one value (lists stay lists)."""
    array = np.empty(len(items), dtype=object)
    for i, item in enumerate(items):  # `array[:] = items` would broadcast nested lists
        array[i] = item
    return array


@dataclass(frozen=True, slots=True)
class Predictions:
    """What a model returns for a batch.

    Args:
        task: 'classification' or 'regression'.
        values: one label (classification) or value (regression) per row.
        probabilities: for classifiers that score, rows x classes, in the order of `classes`.
        classes: the class labels, in the order of the probability columns.
    """

    task: Task
    values: Array
    probabilities: Array | None = None
    classes: tuple[Label, ...] | None = None

    def __post_init__(self) -> None:
        if self.probabilities is not None and (
            self.classes is None or self.probabilities.shape != (len(self.values), len(self.classes))
        ):
            raise ValueError(
                f"probabilities of shape {self.probabilities.shape} do not match "
                f"{len(self.values)} rows and classes {self.classes}"
            )

    @classmethod
    def empty(cls, classes: Sequence[Label] | None, *, scores: bool = True) -> Predictions:
        """Predictions of zero rows: regression without classes, classification with them."""
        if classes is None:
            return cls("regression", np.empty(0, dtype=np.float64))
        probabilities = np.empty((0, len(classes))) if scores else None
        return cls("classification", np.empty(0, dtype=object), probabilities, tuple(classes))

    @property
    def n_rows(self) -> int:
        """The number of rows predicted."""
        return len(self.values)

    def to_columns(self) -> dict[str, Array]:
        """`prediction`, then `proba_<class>` per class when there are probabilities."""
        columns: dict[str, Array] = {"prediction": self.values}
        if self.probabilities is not None and self.classes is not None:
            for j, label in enumerate(self.classes):
                columns[f"{PROBA_PREFIX}{label}"] = self.probabilities[:, j]
        return columns

    def to_pandas(self) -> pd.DataFrame:
        """The predictions as a DataFrame of `to_columns()`."""
        import pandas as pd

        return pd.DataFrame(self.to_columns())

    def to_records(self) -> list[dict[str, Any]]:
        """One plain-Python object per row: prediction, and probabilities by class."""
        values = self.values.tolist()
        if self.probabilities is None or self.classes is None:
            return [{"prediction": v} for v in values]
        keys = [str(c) for c in self.classes]
        return [
            {"prediction": v, "probabilities": dict(zip(keys, row, strict=True))}
            for v, row in zip(values, self.probabilities.tolist(), strict=True)
        ]

    def slice(self, start: int, stop: int) -> Predictions:
        """Rows [start, stop) as views (no copy)."""
        probabilities = None if self.probabilities is None else self.probabilities[start:stop]
        return Predictions(self.task, self.values[start:stop], probabilities, self.classes)

    @staticmethod
    def concat(parts: Sequence[Predictions]) -> Predictions:
        """The predictions of `parts` end to end (all of one model); one part is returned as is."""
        if len(parts) == 1:
            return parts[0]
        first = parts[0]
        probabilities = None
        if first.probabilities is not None:
            probabilities = np.concatenate([p.probabilities for p in parts if p.probabilities is not None])
        return Predictions(
            first.task, np.concatenate([p.values for p in parts]), probabilities, first.classes
        )

    def take(self, rows: Array | Sequence[int]) -> Predictions:
        """The predictions of only the rows at the given positions."""
        index = np.asarray(rows, dtype=np.intp)
        probabilities = None if self.probabilities is None else self.probabilities[index]
        return Predictions(self.task, self.values[index], probabilities, self.classes)
