"""Plain C99 for a tree ensemble: const tables walked by one loop, no malloc, no recursion, no stdio.

`ensemble_c` writes an `Ensemble` (`edge/ensemble.py`) as a header and a source that score a row
exactly as `Ensemble.outputs` / `Ensemble.answers` do; `edge/c_linear.py` writes linear models,
and both are made of the parts in `edge/c_source.py`.

In float32 mode every value is a `float`. For a model that rounds its inputs to float32 itself
(`Ensemble.float32_inputs`), a threshold t is written as the float32 that splits every float32
input as t does (the largest float32 <= t for `x <= t`, the smallest >= t for `x < t`): the C is
then exact. For a model that compares in float64, t is rounded to the nearest float32, so an
input at t (the parity gate's edge rows) still goes where it did; an input strictly between t and
that float32 can go the other way: float32 cannot tell them apart, and float64 mode is exact.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from shipyard.edge.c_source import (
    CSource,
    Dtype,
    LabelRule,
    Prepare,
    categories_c,
    header_c,
    int_type,
    label_c,
    literal,
    post_c,
    prepare_c,
    real_table,
    real_type,
    table,
)
from shipyard.edge.ensemble import Ensemble, Tree
from shipyard.errors import ExportError

__all__ = ["ensemble_c"]


def ensemble_c(
    ensemble: Ensemble, *, name: str, dtype: Dtype = "float64", prepare: Prepare | None = None
) -> CSource:
    """The ensemble as C that scores exactly as `Ensemble.answers` (float64) or within float32.

    Args:
        ensemble: the trees, read by `edge/trees.py` or `edge/boosters.py`.
        name: the C prefix and file stem (a C identifier; see `c_name`).
        dtype: "float64" (double everywhere) or "float32" (float everywhere).
        prepare: a pipeline's imputing and scaling before the trees.

    Raises:
        ExportError: a categorical split holds codes that are not small non-negative integers, or
            the dtype is unknown.
    """
    prepare = prepare or Prepare()
    classifier = ensemble.classes is not None
    source = CSource(
        name=name,
        header="",
        source="",
        dtype=dtype,
        n_features=ensemble.n_features,
        n_outputs=2 if ensemble.post == "logistic" else ensemble.n_outputs,
        classes=ensemble.classes,
        scores=classifier,
        categories=dict(ensemble.categories),
    )
    body = _trees_c(ensemble, name=name, dtype=dtype, prepare=prepare)
    rule: LabelRule | None = "argmax" if classifier else None
    notes = [f"{len(ensemble.trees)} trees; a missing value goes the way the model learned."]
    header = header_c(source, model=ensemble.model or "a tree ensemble", rule=rule, notes=notes)
    if classifier:
        body += "\n" + label_c("argmax", name=name, dtype=dtype)
    body += "\n" + categories_c(ensemble.categories, name=name, dtype=dtype)
    includes = ["#include <math.h>", "#include <stdint.h>"]
    if ensemble.categories:
        includes += ["#include <stddef.h>", "#include <string.h>"]
    text = "\n".join([f'#include "{name}.h"', "", *includes, "", body])
    return replace(source, header=header, source=text)


def _thresholds(ensemble: Ensemble, thresholds: np.ndarray[Any, Any], dtype: Dtype) -> list[str]:
    if dtype == "float64" or not ensemble.float32_inputs:
        return [literal(t, dtype) for t in thresholds]
    rounded = thresholds.astype(np.float32)
    # The float32 that splits every float32 input as the float64 threshold does.
    if ensemble.strict:
        rounded = np.where(rounded < thresholds, np.nextafter(rounded, np.float32(np.inf)), rounded)
    else:
        rounded = np.where(rounded > thresholds, np.nextafter(rounded, np.float32(-np.inf)), rounded)
    return [literal(t, dtype) for t in rounded.astype(np.float64)]


@dataclass
class _Nodes:
    """Every tree's nodes end to end, as the C table holds them: a node's two children are
    neighbours (left, then right), so one index `next` finds both."""

    feature: list[int] = field(default_factory=list)
    threshold: list[float] = field(default_factory=list)
    next: list[int] = field(default_factory=list)
    flags: list[int] = field(default_factory=list)
    value: list[float] = field(default_factory=list)
    root: list[int] = field(default_factory=list)
    set: list[int] = field(default_factory=list)
    words: list[int] = field(default_factory=list)

    def add(self, tree: Tree, ensemble: Ensemble) -> None:
        """Append a tree, numbering its nodes breadth first with each node's children side by side."""
        offset = len(self.feature)
        self.root.append(offset)
        order, position = [0], {0: offset}
        for node in order:  # grows as children are numbered
            if tree.left[node] >= 0:
                children = (int(tree.left[node]), int(tree.right[node]))
                for k, child in enumerate(children):
                    position[child] = offset + len(order) + k
                order += children
        for node in order:
            members = tree.categories.get(node)
            self.set.append(len(self.words) if members is not None else 0)
            if members is not None:
                self.words += _bitset(members, ensemble)
            if tree.left[node] < 0:
                self.feature.append(-1)
                self.next.append(len(self.value))
                self.value += [float(v) for v in tree.value[node]]
                self.threshold.append(0.0)
                self.flags.append(0)
                continue
            self.feature.append(int(tree.feature[node]))
            self.threshold.append(float(tree.threshold[node]))
            self.next.append(position[int(tree.left[node])])
            self.flags.append(int(bool(tree.missing_left[node])) | (2 if members is not None else 0))


def _trees_c(ensemble: Ensemble, *, name: str, dtype: Dtype, prepare: Prepare) -> str:
    real = real_type(dtype)
    nodes = _Nodes()
    for tree in ensemble.trees:
        nodes.add(tree, ensemble)
    targets = [-1 if t is None else t for t in ensemble.targets]
    counts = np.zeros(ensemble.n_outputs)
    for target in ensemble.targets:
        counts[slice(None) if target is None else target] += 1
    index = int_type([*nodes.next, *nodes.root])
    categorical = bool(nodes.words)
    upper = name.upper()
    thresholds = _thresholds(ensemble, np.asarray(nodes.threshold), dtype)
    rows = [
        f"{{{t}, {n}, {f}, {g}}}"
        for t, n, f, g in zip(thresholds, nodes.next, nodes.feature, nodes.flags, strict=True)
    ]
    tables = [
        f"#define {upper}_N_TREES {len(ensemble.trees)}\n",
        f"typedef struct {{\n    {real} threshold;\n    {index} next;\n"
        f"    {int_type([-1, ensemble.n_features])} feature;\n    uint8_t flags;\n}} {name}_node;\n",
        table(f"{name}_node", f"{name}_nodes", rows, per_line=3),
        table(index, f"{name}_root", [str(r) for r in nodes.root]),
        table(int_type([-1, ensemble.n_outputs]), f"{name}_target", [str(t) for t in targets], per_line=16),
        real_table(f"{name}_value", nodes.value, dtype),
        real_table(f"{name}_base", ensemble.base, dtype),
    ]
    if ensemble.average:
        tables.append(real_table(f"{name}_count", np.maximum(counts, 1), dtype))
    if categorical:
        tables.append(table(int_type(nodes.set), f"{name}_set", [str(s) for s in nodes.set], per_line=16))
        tables.append(table("uint32_t", f"{name}_words", [f"{w}u" for w in nodes.words], per_line=6))
    prep_tables, prep_lines = prepare_c(
        prepare,
        name=name,
        dtype=dtype,
        round32=ensemble.float32_inputs and dtype == "float64",
    )
    member = ""
    if categorical:
        member = (
            f"/* A code is in a categorical split's set: bit `code` of the words after the count. */\n"
            f"static int {name}_member({real} v, uint32_t first)\n{{\n"
            f"    const uint32_t n = {name}_words[first];\n    uint32_t code;\n"
            f"    if (!(v >= 0) || v >= ({real})(32u * n)) return 0;\n"
            f"    code = (uint32_t)v;\n    if (({real})code != v) return 0;\n"
            f"    return (int)(({name}_words[first + 1u + code / 32u] >> (code % 32u)) & 1u);\n}}\n\n"
        )
    compare = "<" if ensemble.strict else "<="
    split = (
        f"else if (node->flags & 2)\n"
        f"                right = !{name}_member(v, (uint32_t){name}_set[node - {name}_nodes]);\n            "
        if categorical
        else ""
    )
    declare, start, add_all, add_one, finish = _sums_c(ensemble, name=name, real=real)
    add = (
        f"            if (target < 0) {{ for (i = 0; i < {ensemble.n_outputs}; ++i) {add_all}; }}\n"
        f"            else {add_one};\n"
    )
    predict = (
        f"void {name}_predict(const {real} *features, {real} *out)\n{{\n"
        f"    {real} x[{upper}_N_FEATURES];\n{declare}    int i, t;\n"
        f"{prep_lines}\n{start}"
        f"    for (t = 0; t < {upper}_N_TREES; ++t) {{\n"
        f"        const {name}_node *node = &{name}_nodes[{name}_root[t]];\n"
        f"        const int target = {name}_target[t];\n"
        "        while (node->feature >= 0) {\n"
        f"            const {real} v = x[node->feature];\n"
        "            int right;\n"
        "            if (isnan(v)) right = !(node->flags & 1);\n"
        f"            {split}else right = !(v {compare} node->threshold);\n"
        f"            node = &{name}_nodes[node->next + right];\n"
        "        }\n"
        f"        {{\n            const {real} *leaf = &{name}_value[node->next];\n{add}        }}\n"
        "    }\n"
        f"{finish}{post_c(ensemble.post, n_raw=ensemble.n_outputs, dtype=dtype)}\n}}\n"
    )
    layout = (
        "/* The trees' nodes, all trees end to end; tree t starts at nodes[root[t]] and adds to output\n"
        " * target[t] (-1: to every output). An inner node's children are nodes[next] (the test holds)\n"
        " * and nodes[next + 1]; at a leaf feature is -1 and next is the leaf's first value in value[].\n"
        " * flags: 1 = a missing value goes left, 2 = a categorical split (set[] locates its codes). */\n"
    )
    return layout + "".join(tables) + prep_tables + "\n" + member + predict


def _sums_c(ensemble: Ensemble, *, name: str, real: str) -> tuple[str, str, str, str, str]:
    """How the trees' values are summed into `z[]`: its declaration, its start, the statements
    adding a leaf's values (all outputs; one), and what follows the trees (averaging, `base`).

    Raises:
        ExportError: an ensemble both averaged and summed in float32 (no framework does that).
    """
    n = ensemble.n_outputs
    loop = f"for (i = 0; i < {n}; ++i)"
    if not ensemble.float32_sums:
        average = f"    {loop} z[i] /= {name}_count[i];\n" if ensemble.average else ""
        finish = f"{average}    {loop} z[i] += {name}_base[i];\n"
        return f"    {real} z[{n}] = {{0}};\n", "", "z[i] += leaf[i]", "z[target] += leaf[0]", finish
    if ensemble.average:
        raise ExportError(
            f"{ensemble.model or 'the ensemble'}: averaged trees summed in float32 are not written"
        )
    if real == "float":
        return (
            f"    float z[{n}];\n",
            f"    {loop} z[i] = {name}_base[i];\n",
            "z[i] += leaf[i]",
            "z[target] += leaf[0]",
            "",
        )
    # Each sum rounded to float32, as XGBoost's; then double again for the transform.
    return (
        f"    float s[{n}];\n    double z[{n}];\n",
        f"    {loop} s[i] = (float){name}_base[i];\n",
        "s[i] = (float)((double)s[i] + leaf[i])",
        "s[target] = (float)((double)s[target] + leaf[0])",
        f"    {loop} z[i] = (double)s[i];\n",
    )


def _bitset(members: np.ndarray[Any, Any], ensemble: Ensemble) -> list[int]:
    codes = np.asarray(members, dtype=np.float64)
    if codes.size and (np.any(codes < 0) or np.any(codes != np.round(codes)) or codes.max() > 1 << 20):
        raise ExportError(
            f"{ensemble.model or 'the model'}: a categorical split holds codes {codes.tolist()[:10]}; "
            "the C export expects category positions (non-negative integers below 2**20)"
        )
    n_words = int(codes.max()) // 32 + 1 if codes.size else 1
    words = [0] * n_words
    for code in codes.astype(np.int64):
        words[int(code) // 32] |= 1 << (int(code) % 32)
    return [n_words, *words]
