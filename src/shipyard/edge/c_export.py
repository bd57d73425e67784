"""`shipyard export REF --to c`: a version as a C header and source, held to the parity gate.

The model is written as C (`edge/c_code.py`, `edge/c_linear.py`), compiled with gcc and scored
through the harness (`edge/c_harness.py`) on the gate's rows; only an export that passes is
written: `<name>.h`, `<name>.c`, `parity.json` and `USAGE.txt`, into a new folder made whole by a
rename.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from shipyard.core.jsonsafe import json_safe
from shipyard.edge.c_harness import CFLAGS, c_predictor, compile_c
from shipyard.edge.c_linear import model_c
from shipyard.edge.c_source import CSource, Dtype, c_name, real_type
from shipyard.edge.parity import Holdout, ParityReport, check_parity
from shipyard.edge.trees import read_ensemble
from shipyard.errors import ExportError, ParityError, UnsupportedExportError
from shipyard.store.files import atomic_folder

if TYPE_CHECKING:
    from shipyard.registry.loaded import LoadedModel

__all__ = ["CExport", "export_c"]


@dataclass(frozen=True)
class CExport:
    """A written C export.

    Args:
        out: the folder written.
        header: `<name>.h`.
        source: `<name>.c`.
        usage: `USAGE.txt`, how to build and call it.
        parity: the gate's report (also in `parity.json`).
    """

    out: Path
    header: Path
    source: Path
    usage: Path
    parity: ParityReport


def export_c(
    loaded: LoadedModel,
    out: Path,
    *,
    dtype: Dtype = "float64",
    name: str | None = None,
    holdout: Holdout | None = None,
) -> CExport:
    """Write a version as C into the new folder `out`, once the compiled C passes the parity gate.

    Args:
        loaded: the version to export.
        out: a folder that does not exist yet, or is empty.
        dtype: "float64" (double, the gate's 1e-6) or "float32" (float, the gate's 1e-4).
        name: the C prefix and file stem; the model's name by default.
        holdout: labelled rows for the gate's headline metric (`parity.Holdout`).

    Raises:
        UnsupportedExportError: the version is not a tree ensemble or linear model (or a pipeline
            of scalers and imputers before one), or is a custom Python (pyfunc) version.
        ParityError: the C does not answer as the version does; nothing is written.
        ExportError: `out` is not empty, or gcc is missing or refuses the source.
    """
    out = Path(out).absolute()  # gcc runs in the build folder: a relative path would miss
    flavor = loaded.version.flavor
    if flavor in {"pyfunc", "onnx", "pickle"}:
        raise UnsupportedExportError(
            f"a {flavor} version ({loaded.version.ref}): the C export reads a scikit-learn, XGBoost or "
            "LightGBM model's own trees or coefficients; register that model and export it"
        )
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ExportError(f"{out} exists and is not an empty folder; give --out a new folder")
    contract = loaded.contract
    classes = contract.classes if contract.task == "classification" else None
    written = model_c(
        loaded.model,
        name=c_name(name or loaded.version.name),
        dtype=dtype,
        read_ensemble=lambda model: read_ensemble(model, classes=classes),
    )
    source = written.source
    try:
        with atomic_folder(out, mode=None) as staging:
            compiled = compile_c(source, workdir=staging / "build")
            report = check_parity(
                loaded, c_predictor(compiled), dtype=dtype, holdout=holdout, ensemble=written.ensemble
            )
            if not report.passed:
                raise ParityError(
                    f"the C export of {loaded.version.ref} is refused; nothing was written.\n"
                    f"{report.summary()}",
                    report.to_dict(),
                )
            shutil.rmtree(staging / "build")
            (staging / source.header_file).write_text(source.header)
            (staging / source.source_file).write_text(source.source)
            (staging / "parity.json").write_text(
                json.dumps(json_safe(report.to_dict()), indent=2, sort_keys=True) + "\n"
            )
            (staging / "USAGE.txt").write_text(usage_text(source, ref=str(loaded.version.ref)))
    except OSError as exc:
        raise ExportError(
            f"cannot write the export to {out}: {exc.strerror}; name a folder you can write"
        ) from None
    return CExport(
        out=out,
        header=out / source.header_file,
        source=out / source.source_file,
        usage=out / "USAGE.txt",
        parity=report,
    )


def usage_text(source: CSource, *, ref: str) -> str:
    """How to build and call the exported C: the README beside the two files."""
    real = real_type(source.dtype)
    name, upper = source.name, source.name.upper()
    lines = [
        f"{ref} as C99 ({source.dtype}): {source.header_file} and {source.source_file}, no dependencies",
        "but the C library's math.h (link with -lm).",
        "",
        "Build (the flags the export was compiled and checked with):",
        f"    gcc {' '.join(CFLAGS)} -c {source.source_file}",
        f"    gcc ... your_program.o {name}.o -lm",
        "With clang, or gcc in a GNU mode (-std=gnu99), add -ffp-contract=off: on chips with FMA they",
        "fuse a*b+c, which moves answers by a few units in the last place (gcc -std=c99 does not).",
        "",
        "Call:",
        f'    #include "{source.header_file}"',
        f"    {real} row[{upper}_N_FEATURES] = {{ ... }};  /* the inputs in order; NAN when missing */",
        f"    {real} out[{upper}_N_OUTPUTS];",
        f"    {name}_predict(row, out);",
    ]
    if source.classes is not None:
        what = "probabilities per class" if source.scores else "decision values (no probabilities)"
        lines += [
            f"    int label = {name}_predict_label(row);   /* {name}_classes[label] is the class */",
            "",
            f"out holds the {what}; the classes, in order: {', '.join(map(str, source.classes))}.",
        ]
    else:
        lines += ["", "out holds the predicted value."]
    if source.dtype == "float32":
        lines += [
            "",
            "float32: every value is a float (no double arithmetic, for chips without a double FPU).",
            "An input that float32 cannot hold exactly is rounded, and may then fall on the other",
            "side of a split than it does in the model; export with --dtype float64 to be exact.",
        ]
    if source.categories:
        lines += [
            "",
            f'Categorical features take codes: {name}_category_code(feature, "text") gives a category\'s',
            "code, NaN for a category the model never saw (treated as missing). The header lists the codes.",
        ]
    lines += [
        "",
        "parity.json is the gate's report: the C, compiled with the flags above, against the version",
        "on its reference sample and edge rows (missing values, values at split thresholds, ranges).",
    ]
    return "\n".join(lines) + "\n"
