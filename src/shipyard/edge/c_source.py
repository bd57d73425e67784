"""The C that every export shares: the `CSource` an export returns, C literals and tables, a
pipeline's preprocessing (`Prepare`), the post transforms, the label rule and the header.

The writers are `edge/c_code.py` (tree ensembles) and `edge/c_linear.py` (linear models).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from shipyard.errors import ExportError, InputError

__all__ = [
    "CSource",
    "Dtype",
    "LabelRule",
    "Prepare",
    "c_name",
    "c_string",
    "categories_c",
    "header_c",
    "int_type",
    "label_c",
    "literal",
    "post_c",
    "prepare_c",
    "real_table",
    "real_type",
    "table",
]

Dtype = Literal["float64", "float32"]
LabelRule = Literal["argmax", "sign"]
"""How a classifier's label index comes from `out`: the first largest value, or, for a binary model
that gives one decision value, 1 when it is above zero."""

_REAL_TYPES = {"float64": "double", "float32": "float"}
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class CSource:
    """A model as C: `<name>.h` and `<name>.c`.

    Args:
        name: the C prefix of every symbol (`<name>_predict`), also the file names' stem.
        header: the text of `<name>.h`.
        source: the text of `<name>.c`.
        dtype: `double` (float64) or `float` (float32) everywhere.
        n_features: the inputs `<name>_predict` reads.
        n_outputs: the values it writes.
        classes: a classifier's labels (the label index points into them); None for regression.
        scores: True when the outputs are a classifier's probabilities, False when they are
            decision values (models without `predict_proba`) or regression values.
        categories: input column -> its category values, the code of each being its position.
    """

    name: str
    header: str
    source: str
    dtype: Dtype
    n_features: int
    n_outputs: int
    classes: tuple[Any, ...] | None
    scores: bool
    categories: Mapping[int, tuple[Any, ...]] = field(default_factory=dict)

    @property
    def header_file(self) -> str:
        """The header's file name."""
        return f"{self.name}.h"

    @property
    def source_file(self) -> str:
        """The source's file name."""
        return f"{self.name}.c"


@dataclass(frozen=True)
class Prepare:
    """What a pipeline does to each input before the model, per column, in this order: fill a
    missing value (SimpleImputer), then each scaling step as scikit-learn computes it.

    Args:
        fill: per column, the value that replaces NaN; None when nothing is imputed.
        steps: ("standard", mean or None, scale or None): `(x - mean) / scale`;
            ("minmax", scale, minimum, clip range or None): `x * scale + minimum`, then clipped.
    """

    fill: np.ndarray[Any, Any] | None = None
    steps: tuple[tuple[Any, ...], ...] = ()

    @property
    def empty(self) -> bool:
        """True when the inputs go to the model as they are."""
        return self.fill is None and not self.steps


def real_type(dtype: str) -> str:
    """The C type of every value in `dtype` mode: `double` (float64) or `float` (float32).

    Raises:
        ExportError: `dtype` is neither.
    """
    if dtype not in _REAL_TYPES:
        raise ExportError(f"dtype {dtype!r} has no C type; expected one of {sorted(_REAL_TYPES)}")
    return _REAL_TYPES[dtype]


def c_name(text: str) -> str:
    """`text` as a C identifier: characters that cannot be in one become `_`.

    Raises:
        InputError: nothing of `text` is left to name the symbols by.
    """
    name = re.sub(r"[^A-Za-z0-9_]", "_", text).strip("_").lower()
    if name and name[0].isdigit():
        name = f"model_{name}"
    if not _IDENTIFIER.fullmatch(name):
        raise InputError(f"{text!r} cannot name C symbols; expected letters, digits and '_', e.g. 'credit'")
    return name


def literal(value: float, dtype: Dtype) -> str:
    """`value` as a C constant of the mode's type that reads back to the same number."""
    real_type(dtype)
    number = float(np.float32(value)) if dtype == "float32" else float(value)
    if np.isnan(number):
        return "NAN"
    if np.isinf(number):
        return "INFINITY" if number > 0 else "-INFINITY"
    if dtype == "float64":
        return repr(number)
    text = f"{number:.9g}"
    return f"{text}f" if any(c in text for c in ".e") else f"{text}.0f"


def c_string(text: str) -> str:
    """`text` as a C string literal (UTF-8; anything outside printable ASCII escaped in octal)."""
    out = []
    for byte in text.encode():
        char = chr(byte)
        out.append(f"\\{char}" if char in '"\\' else char if 32 <= byte < 127 else f"\\{byte:03o}")
    # An octal escape followed by a digit would swallow it; close and reopen the string there.
    return '"' + re.sub(r"(\\[0-7]{3})(?=[0-7])", r'\1""', "".join(out)) + '"'


def int_type(values: Sequence[int] | np.ndarray[Any, Any]) -> str:
    """The smallest signed C integer type that holds every value."""
    array = np.asarray(values, dtype=np.int64)
    low, high = (int(array.min()), int(array.max())) if array.size else (0, 0)
    for bits in (8, 16, 32):
        if -(2 ** (bits - 1)) <= low and high < 2 ** (bits - 1):
            return f"int{bits}_t"
    return "int64_t"


def table(c_type: str, name: str, values: Sequence[str], *, per_line: int = 8) -> str:
    """A `static const` C array of the given element texts."""
    rows = [", ".join(values[i : i + per_line]) for i in range(0, len(values), per_line)] or ["0"]
    body = ",\n    ".join(rows)
    return f"static const {c_type} {name}[{max(len(values), 1)}] = {{\n    {body}\n}};\n"


def real_table(name: str, values: Any, dtype: Dtype) -> str:
    """A const array of the mode's real type."""
    real = real_type(dtype)
    return table(real, name, [literal(v, dtype) for v in np.asarray(values, dtype=np.float64).ravel()])


def prepare_c(prepare: Prepare, *, name: str, dtype: Dtype, round32: bool) -> tuple[str, str]:
    """The tables and the body lines that fill `x[]` from `features[]`.

    Args:
        round32: round each prepared value to float32 (float64 mode; trees that compare in float32).
    """
    real = real_type(dtype)
    tables, lines = (
        [],
        [f"    for (i = 0; i < {name.upper()}_N_FEATURES; ++i) {{", f"        {real} v = features[i];"],
    )
    if prepare.fill is not None:
        tables.append(real_table(f"{name}_fill", prepare.fill, dtype))
        lines.append(f"        if (isnan(v)) v = {name}_fill[i];")
    for k, step in enumerate(prepare.steps):
        if step[0] == "standard":
            _, mean, scale = step
            if mean is not None:
                tables.append(real_table(f"{name}_mean{k}", mean, dtype))
                lines.append(f"        v -= {name}_mean{k}[i];")
            if scale is not None:
                tables.append(real_table(f"{name}_scale{k}", scale, dtype))
                lines.append(f"        v /= {name}_scale{k}[i];")
        else:
            _, scale, minimum, clip = step
            tables.append(real_table(f"{name}_scale{k}", scale, dtype))
            tables.append(real_table(f"{name}_min{k}", minimum, dtype))
            lines += [f"        v *= {name}_scale{k}[i];", f"        v += {name}_min{k}[i];"]
            if clip is not None:
                low, high = (literal(c, dtype) for c in clip)
                lines += [f"        if (v < {low}) v = {low};", f"        if (v > {high}) v = {high};"]
    lines.append("        x[i] = (double)(float)v;" if round32 else "        x[i] = v;")
    lines.append("    }")
    return "".join(tables), "\n".join(lines)


def post_c(post: str, *, n_raw: int, dtype: Dtype) -> str:
    """Body lines turning the raw sums `z[]` into `out[]`.

    Args:
        post: "none" (copy), "logistic" (one value into two probabilities), "softmax", or "ovr"
            (each value's logistic, normalised to sum to one, as scikit-learn's one-vs-rest).
    """
    real, exp = ("float", "expf") if dtype == "float32" else ("double", "exp")
    if post == "logistic":
        return (
            f"    {{\n        const {real} p = 1 / (1 + {exp}(-z[0]));\n"
            "        out[0] = 1 - p;\n        out[1] = p;\n    }"
        )
    if post == "none":
        return f"    for (i = 0; i < {n_raw}; ++i) out[i] = z[i];"
    if post == "softmax":
        return "\n".join(
            [
                f"    {{\n        {real} top = z[0], total = 0;",
                f"        for (i = 1; i < {n_raw}; ++i) if (z[i] > top) top = z[i];",
                f"        for (i = 0; i < {n_raw}; ++i) {{ out[i] = {exp}(z[i] - top); total += out[i]; }}",
                f"        for (i = 0; i < {n_raw}; ++i) out[i] /= total;\n    }}",
            ]
        )
    return "\n".join(
        [
            f"    {{\n        {real} total = 0;",
            f"        for (i = 0; i < {n_raw}; ++i) {{ out[i] = 1 / (1 + {exp}(-z[i])); total += out[i]; }}",
            f"        if (total == 0) {{ for (i = 0; i < {n_raw}; ++i) out[i] = 1; total = {n_raw}; }}",
            f"        for (i = 0; i < {n_raw}; ++i) out[i] /= total;\n    }}",
        ]
    )


def label_c(rule: LabelRule, *, name: str, dtype: Dtype) -> str:
    """`<name>_predict_label`: the label index from `<name>_predict`'s outputs."""
    real = real_type(dtype)
    upper = name.upper()
    head = f"int {name}_predict_label(const {real} *features)\n{{\n    {real} out[{upper}_N_OUTPUTS];\n"
    if rule == "sign":
        return head + f"    {name}_predict(features, out);\n    return out[0] > 0 ? 1 : 0;\n}}\n"
    return head + (
        f"    int i, best = 0;\n    {name}_predict(features, out);\n"
        f"    for (i = 1; i < {upper}_N_OUTPUTS; ++i) if (out[i] > out[best]) best = i;\n"
        "    return best;\n}\n"
    )


def categories_c(categories: Mapping[int, tuple[Any, ...]], *, name: str, dtype: Dtype) -> str:
    """`<name>_category_code`: a category's code from its text, NaN for a value never seen."""
    if not categories:
        return ""
    real = real_type(dtype)
    parts = []
    cases = []
    for column, values in sorted(categories.items()):
        parts.append(table("char *const", f"{name}_categories{column}", [c_string(str(v)) for v in values]))
        cases.append(
            f"    case {column}: return {name}_find({name}_categories{column}, {len(values)}, value);"
        )
    finder = (
        f"static {real} {name}_find(const char *const *values, int n, const char *value)\n{{\n"
        f"    int i;\n    for (i = 0; i < n; ++i) if (strcmp(values[i], value) == 0) return ({real})i;\n"
        "    return NAN;\n}\n\n"
    )
    body = "\n".join(cases)
    return (
        "".join(parts)
        + "\n"
        + finder
        + f"{real} {name}_category_code(int feature, const char *value)\n{{\n"
        + "    if (value == NULL) return NAN;\n    switch (feature) {\n"
        + f"{body}\n    default: return NAN;\n    }}\n}}\n"
    )


def header_c(source: CSource, *, model: str, rule: LabelRule | None, notes: Sequence[str] = ()) -> str:
    """The header: what the model is, how to build it, its sizes, classes and functions."""
    real = real_type(source.dtype)
    name, upper = source.name, source.name.upper()
    if source.classes is None:
        outputs = "the regression value(s)"
    elif source.scores:
        outputs = "one probability per class, in the order of the class table"
    else:
        outputs = "the decision values (the model has no probabilities): " + (
            "label 1 when out[0] > 0" if rule == "sign" else "the label is the largest"
        )
    lines = [
        f"/* {name}.h: {model}, exported by Shipyard as dependency-free C99.",
        " *",
        f" * Build: cc -O2 -std=c99 -c {name}.c, and link with -lm (exp, or expf in float32 mode).",
        " * Add -ffp-contract=off with clang or a GNU mode (gcc -std=c99 has it already): a fused a*b+c",
        " * would move the answers by a few units in the last place.",
        f" * Inputs: {upper}_N_FEATURES {real} values per row in the model's input order; NaN for missing.",
        f" * Outputs: {upper}_N_OUTPUTS {real} values, {outputs}.",
        " * No malloc, no stdio, no globals written: the tables are const (they stay in flash).",
        *(f" * {note}" for note in notes),
        " */",
        f"#ifndef {upper}_H",
        f"#define {upper}_H",
        "",
        f"#define {upper}_N_FEATURES {source.n_features}",
        f"#define {upper}_N_OUTPUTS {source.n_outputs}",
        "",
        f"void {name}_predict(const {real} *features, {real} *out);",
    ]
    if source.classes is not None:
        labels = ", ".join(c_string(str(c)) for c in source.classes)
        lines += [
            "",
            _commented(f"/* The class labels: {', '.join(repr(c) for c in source.classes)}.") + " */",
            f"#define {upper}_N_CLASSES {len(source.classes)}",
            f"static const char *const {name}_classes[{upper}_N_CLASSES] = {{{labels}}};",
            f"/* The index into {name}_classes of the row's predicted class. */",
            f"int {name}_predict_label(const {real} *features);",
        ]
    if source.categories:
        described = []
        for column, values in sorted(source.categories.items()):
            pairs = [_commented(f"{v!r}={code}") for code, v in enumerate(values)]
            described.append(f" * feature {column}:")
            described += [" *     " + ", ".join(pairs[i : i + 8]) for i in range(0, len(pairs), 8)]
        lines += [
            "",
            f"/* A categorical feature is given as its category's code ({name}_category_code); by feature:",
            *described,
            " * Any other category (or NULL) is NaN: the model treats it as missing. */",
            f"{real} {name}_category_code(int feature, const char *value);",
        ]
    lines += ["", f"#endif /* {upper}_H */", ""]
    return "\n".join(lines)


def _commented(text: str) -> str:
    """`text` safe inside a C comment: a label holding `*/` would end it."""
    return text.replace("*/", "*\\/")
