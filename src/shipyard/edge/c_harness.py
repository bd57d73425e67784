"""The C export compiled and run from Python: what the parity gate scores it with.

`compile_c` builds the generated source with a small batch harness into a shared library, with
the flags a careful firmware build uses (`-O2 -std=c99 -Wall -Wextra -Werror -pedantic`), and
loads it with ctypes: one call scores a whole matrix, so the speed measured is the C's.
(A subprocess reading rows from stdin would measure the pipe as much as the model.) The
harness's symbols (`shipyard_rows_predicted`, ...) are no model's: a model's all end in
`_predict`, `_predict_label`, `_category_code` or name its tables.
"""

from __future__ import annotations

import ctypes
import hashlib
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from shipyard.core.batch import Batch, Predictions
from shipyard.edge.c_source import CSource, real_type
from shipyard.errors import ExportError

__all__ = ["CFLAGS", "CompiledModel", "c_predictor", "compile_c"]

CFLAGS = (
    "-O2",
    "-std=c99",
    "-Wall",
    "-Wextra",
    "-Werror",
    "-pedantic",
    "-Wconversion",
    "-Wsign-conversion",
    "-Wdouble-promotion",
    "-Wshadow",
    "-Wstrict-prototypes",
    "-Wmissing-prototypes",
)
"""The flags every export is compiled with before it is written; warnings are errors. Beyond
-Wall -Wextra -pedantic, the ones firmware builds turn on: no silent narrowing or sign change,
no float promoted to double behind the author's back (a soft-float call on a chip without a
double FPU)."""

_HARNESS = """#include "{name}.h"

void shipyard_rows_predicted(const {real} *rows, long n, {real} *out);
void shipyard_rows_labelled(const {real} *rows, long n, int *labels);
{category_prototype}
void shipyard_rows_predicted(const {real} *rows, long n, {real} *out)
{{
    long r;
    for (r = 0; r < n; ++r) {name}_predict(rows + r * {upper}_N_FEATURES, out + r * {upper}_N_OUTPUTS);
}}

void shipyard_rows_labelled(const {real} *rows, long n, int *labels)
{{
    long r;
    (void)rows;
    for (r = 0; r < n; ++r) labels[r] = {label_call};
}}
{category_function}"""


@dataclass(frozen=True)
class CompiledModel:
    """A compiled C export, loaded in this process.

    Args:
        source: what was compiled.
        library: the shared library's path.
        handle: the library loaded by ctypes.
    """

    source: CSource
    library: Path
    handle: ctypes.CDLL

    @property
    def _real(self) -> type[np.floating[Any]]:
        return np.float32 if self.source.dtype == "float32" else np.float64

    def predict(self, x: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """`<name>_predict` over each row: (rows, n_outputs) as float64.

        Args:
            x: (rows, n_features), categorical columns as codes, NaN for missing.
        """
        rows = self._rows(x)
        out = np.empty((len(rows), self.source.n_outputs), dtype=self._real)
        self.handle.shipyard_rows_predicted(_pointer(rows), ctypes.c_long(len(rows)), _pointer(out))
        return out.astype(np.float64)

    def labels(self, x: npt.ArrayLike) -> npt.NDArray[np.intc]:
        """`<name>_predict_label` over each row: the index into the classes (0 for a regressor)."""
        rows = self._rows(x)
        labels = np.zeros(len(rows), dtype=np.intc)
        self.handle.shipyard_rows_labelled(_pointer(rows), ctypes.c_long(len(rows)), _pointer(labels))
        return labels

    def category_code(self, feature: int, value: str | None) -> float:
        """`<name>_category_code`: the code of a category's text, NaN when the model never saw it."""
        argument = None if value is None else value.encode()
        return float(self.handle.shipyard_code_of(ctypes.c_int(feature), ctypes.c_char_p(argument)))

    def matrix(self, batch: Batch) -> npt.NDArray[np.float64]:
        """The batch's columns as the model's input matrix, categories turned into codes by the C."""
        columns = []
        for i, column in enumerate(batch.columns.values()):
            if i in self.source.categories:
                texts = [None if _missing(value) else str(value) for value in column]
                codes = {text: self.category_code(i, text) for text in set(texts)}
                columns.append(np.array([codes[text] for text in texts], dtype=np.float64))
            else:
                columns.append(np.asarray(column, dtype=np.float64))
        if not columns:
            return np.empty((batch.n_rows, 0))
        return np.column_stack(columns)

    def _rows(self, x: npt.ArrayLike) -> npt.NDArray[Any]:
        rows = np.ascontiguousarray(x, dtype=self._real)
        if rows.ndim != 2 or rows.shape[1] != self.source.n_features:
            raise ExportError(
                f"the C model {self.source.name!r} takes rows of {self.source.n_features} features; "
                f"got an array of shape {rows.shape}"
            )
        return rows


def compile_c(source: CSource, *, workdir: Path) -> CompiledModel:
    """Write the source and the harness into `workdir`, compile them with gcc and load the library.

    Raises:
        ExportError: gcc is not on PATH, or the source does not compile cleanly (its messages).
    """
    gcc = shutil.which("gcc")
    if gcc is None:
        raise ExportError("the C export is compiled with gcc before it is written, and gcc is not on PATH")
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / source.header_file).write_text(source.header)
    (workdir / source.source_file).write_text(source.source)
    harness = workdir / f"{source.name}_harness.c"
    harness.write_text(_harness_text(source))
    # dlopen gives back the library already loaded from a path: a path per source text keeps a
    # new export in the same folder from being answered by the old one.
    digest = hashlib.sha256((source.header + source.source).encode()).hexdigest()[:16]
    library = workdir / f"lib{source.name}-{digest}.so"
    command = [gcc, *CFLAGS, "-shared", "-fPIC", "-o", str(library), source.source_file, harness.name, "-lm"]
    done = subprocess.run(command, cwd=workdir, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise ExportError(f"gcc refused the generated C for {source.name!r}:\n{done.stderr.strip()[:4000]}")
    handle = ctypes.CDLL(str(library))
    if source.categories:
        handle.shipyard_code_of.restype = ctypes.c_float if source.dtype == "float32" else ctypes.c_double
    return CompiledModel(source, library, handle)


def c_predictor(compiled: CompiledModel) -> Callable[[Batch], Predictions]:
    """A scorer of batches for the parity gate: the C's answers as the version's `Predictions`."""
    source = compiled.source

    def predict(batch: Batch) -> Predictions:
        x = compiled.matrix(batch)
        out = compiled.predict(x)
        if source.classes is None:
            return Predictions("regression", out[:, 0])
        labels = np.asarray(source.classes, dtype=object)[compiled.labels(x)]
        return Predictions("classification", labels, out if source.scores else None, source.classes)

    return predict


def _harness_text(source: CSource) -> str:
    real = real_type(source.dtype)
    name = source.name
    label_call = f"{name}_predict_label(rows + r * {name.upper()}_N_FEATURES)" if source.classes else "0"
    prototype = function = ""
    if source.categories:
        prototype = f"{real} shipyard_code_of(int feature, const char *value);\n"
        function = (
            f"\n{real} shipyard_code_of(int feature, const char *value)\n{{\n"
            f"    return {name}_category_code(feature, value);\n}}\n"
        )
    return _HARNESS.format(
        name=name,
        upper=name.upper(),
        real=real,
        label_call=label_call,
        category_prototype=prototype,
        category_function=function,
    )


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and bool(np.isnan(value)))


def _pointer(array: npt.NDArray[Any]) -> ctypes.c_void_p:
    return ctypes.c_void_p(array.ctypes.data)
