"""`shipyard.export`: a registered version converted for the edge, checked by the parity gate, then
written to a folder and/or registered as a new version of the same model.

Nothing is written unless the gate passes: a failing export raises `ParityError` with the rows
and features that differ. A registered export is a version like any other (the `onnx` flavor,
the same contract, the source's reference profile and sample) whose lineage says
`exported_from` and keeps the parity report.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.core.jsonsafe import json_safe
from shipyard.edge.onnx_export import onnx_scorer, read_ensemble, refuse_flavor, to_onnx
from shipyard.edge.parity import Holdout, ParityReport, check_parity
from shipyard.errors import ExportError, ParityError
from shipyard.store.files import atomic_folder

if TYPE_CHECKING:
    import onnx

    from shipyard.registry.loaded import LoadedModel
    from shipyard.registry.registry import Registry

__all__ = ["TARGETS", "ExportResult", "export"]

TARGETS = ("onnx", "c")
"""What a version can be exported to."""

MODEL_FILE = "model.onnx"
PARITY_FILE = "parity.json"


@dataclass(frozen=True)
class ExportResult:
    """What an export made.

    Args:
        source: the version exported (`credit:3`).
        to: the target ('onnx').
        dtype: the precision of the export.
        report: the parity gate's report (passed).
        out: the folder written, or None.
        files: the files written in it.
        registered: the new version (`credit:4`), or None.
        model: the exported graph (None for C).
        reports: what pruning and quantizing did ('pruning', 'quantization'), when asked.
    """

    source: str
    to: str
    dtype: str
    report: ParityReport
    out: Path | None = None
    files: tuple[Path, ...] = ()
    registered: str | None = None
    model: Any = field(default=None, repr=False, compare=False)
    reports: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The result as JSON-safe data."""
        return {
            "source": self.source,
            "to": self.to,
            "dtype": self.dtype,
            "out": None if self.out is None else str(self.out),
            "files": [str(f) for f in self.files],
            "registered": self.registered,
            "parity": self.report.to_dict(),
            **self.reports,
        }


def export(
    ref: str,
    *,
    to: str = "onnx",
    out: str | os.PathLike[str] | None = None,
    dtype: str = "float64",
    register: bool = False,
    registry: Registry | None = None,
    holdout: Holdout | None = None,
    quantize: str | None = None,
    calibration: str = "dynamic",
    prune: bool = False,
    max_metric_drop: float = 0.005,
    name: str | None = None,
) -> ExportResult:
    """Export a version, hold it to the parity gate, then write and/or register it.

    With neither `out` nor `register`, the export is checked and nothing is written.

    Args:
        ref: the version (`credit:3`, `credit@production`).
        to: 'onnx' or 'c' (tree ensembles and linear models; `out` is then required).
        out: a folder to write the export and `parity.json` into; it must not exist or be empty.
        dtype: 'float64' (the default; probabilities within 1e-6) or 'float32' (within 1e-4).
        register: register the export as the next version of the same model (ONNX only).
        registry: the registry (the default one from the environment when omitted).
        holdout: labelled rows to measure the headline metric on (`Holdout.read` reads a file).
        quantize: 'int8': quantize the float32 graph's MatMul/Gemm weights (ONNX only); held to
            `max_metric_drop` instead of the float bounds.
        calibration: 'dynamic' (activations scaled per call) or 'static' (scales from rows drawn
            from the version's reference profile).
        prune: first prune a copy of the model (MLP and linear weights by magnitude, boosting
            rounds from the end, a forest's least useful trees) as far as `max_metric_drop` allows;
            the export is then held to the gate against the pruned model.
        max_metric_drop: how much any headline metric may drop by quantizing or pruning.
        name: the C export's symbol prefix and file stem (the model's name by default).

    Raises:
        UnsupportedExportError: the model, or a step of it, has no converter; the message names it.
        ParityError: the export does not answer as the version does; nothing was written.
        ExportError: an unknown `to`, `dtype`, `quantize` or `calibration`; `out` is not empty;
            quantizing or pruning cannot stay within `max_metric_drop`.
        NotFoundError: no such version.
    """
    _check_choices(to, out=out, register=register, quantize=quantize, calibration=calibration)
    folder = None if out is None else Path(out)
    if folder is not None:
        _check_empty(folder)
    if registry is None:
        from shipyard.registry.default import default_registry

        registry = default_registry()
    version = registry.get(ref)
    refuse_flavor(version.flavor, str(version.ref))  # before loading: a pyfunc would need trust first
    loaded = registry.load(version.ref)
    source = str(loaded.version.ref)
    reports: dict[str, Any] = {}
    if prune:
        loaded, reports["pruning"] = _pruned(loaded, dtype=dtype, holdout=holdout, bound=max_metric_drop)
    if to == "c":
        from shipyard.edge.c_export import export_c

        assert folder is not None  # checked by _check_choices
        written = export_c(loaded, folder, dtype=dtype, name=name, holdout=holdout)  # type: ignore[arg-type]
        if reports:
            _add_reports(folder, reports)
        written_files = (written.header, written.source, written.usage, written.out / PARITY_FILE)
        return ExportResult(source, to, dtype, written.parity, folder, written_files, None, None, reports)
    if quantize is not None:
        graph, report, reports["quantization"] = _quantized(
            loaded, calibration=calibration, holdout=holdout, bound=max_metric_drop
        )
        dtype = "float32"
    else:
        graph = to_onnx(loaded, dtype=dtype)
        report = check_parity(
            loaded,
            onnx_scorer(graph, loaded.contract),
            dtype=dtype,
            holdout=holdout,
            ensemble=read_ensemble(loaded),
        )
        if not report.passed:
            hint = (
                "\nfloat32 arithmetic in the graph (a scaler before trees, say) moves values across "
                "splits the model takes in float64: export with --dtype float64 (the default)"
                if dtype == "float32"
                else ""
            )
            raise ParityError(
                f"the ONNX export of {source} is refused; nothing was written.\n{report.summary()}{hint}",
                report.to_dict(),
            )
    files: tuple[Path, ...] = ()
    if folder is not None:
        files = _write(folder, graph, report)
        if reports:
            _add_reports(folder, reports)
    registered = _register(registry, loaded, graph, report, reports) if register else None
    return ExportResult(source, to, dtype, report, folder, files, registered, graph, reports)


def _check_choices(to: str, *, out: object, register: bool, quantize: str | None, calibration: str) -> None:
    if to not in TARGETS:
        raise ExportError(f"cannot export to {to!r}; expected one of {list(TARGETS)}")
    if quantize not in (None, "int8"):
        raise ExportError(f"cannot quantize to {quantize!r}; expected 'int8'")
    if calibration not in ("dynamic", "static"):
        raise ExportError(f"calibration {calibration!r} is not one of 'dynamic', 'static'")
    if to == "c":
        if out is None:
            raise ExportError("--to c writes a header and a source: name the folder with --out DIR")
        if register:
            raise ExportError(
                "--register takes an ONNX export (the onnx flavor serves it); a C export is compiled "
                "into firmware, not served: leave out --register, or export --to onnx"
            )
        if quantize is not None:
            raise ExportError("--quantize int8 quantizes an ONNX graph; export --to onnx to quantize")


def _pruned(
    loaded: LoadedModel, *, dtype: str, holdout: Holdout | None, bound: float
) -> tuple[LoadedModel, Any]:
    """The version predicting with a pruned copy of its model, and the pruning report."""
    from shipyard.edge.pruned_version import prune_version, with_model

    pruned = prune_version(
        loaded,
        max_metric_drop=bound,
        holdout=holdout,
        export=lambda model: to_onnx(with_model(loaded, model), dtype=dtype),
    )
    return with_model(loaded, pruned.model), pruned.to_dict()


def _quantized(
    loaded: LoadedModel, *, calibration: str, holdout: Holdout | None, bound: float
) -> tuple[onnx.ModelProto, ParityReport, dict[str, Any]]:
    """The version's int8 graph, its parity report (for the record) and the quantization report.

    Raises:
        UnsupportedExportError: nothing in the graph can be int8 (tree ensembles).
        ExportError: a headline metric dropped by more than `bound`; nothing is written.
    """
    from shipyard.edge.quantized_version import quantize_version

    result = quantize_version(
        loaded,
        to_onnx(loaded, dtype="float32"),
        mode="static" if calibration == "static" else "dynamic",
        max_metric_drop=bound,
        holdout=holdout,
    )
    if not result.passed:
        raise ExportError(
            f"the int8 export of {loaded.version.ref} is refused; nothing was written: a headline "
            f"metric dropped by more than {bound} ({result.metric.to_dict()}). Raise --max-metric-drop, "
            "try --calibration static, or export without --quantize"
        )
    return result.quantized.model, result.parity, result.to_dict()


def _add_reports(folder: Path, reports: dict[str, Any]) -> None:
    """Write the pruning and quantization reports beside the export (`<what>.json`)."""
    for what, report in reports.items():
        (folder / f"{what}.json").write_text(json.dumps(json_safe(report), indent=2) + "\n")


def _check_empty(folder: Path) -> None:
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise ExportError(
            f"{folder} already exists and is not an empty folder; an export writes a new folder. "
            "Name another --out, or empty it"
        )


def _write(folder: Path, graph: onnx.ModelProto, report: ParityReport) -> tuple[Path, ...]:
    """Write the graph and the report into a folder beside `folder`, then rename it into place."""
    try:
        with atomic_folder(folder) as staging:
            (staging / MODEL_FILE).write_bytes(graph.SerializeToString())
            (staging / PARITY_FILE).write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    except OSError as exc:
        raise _unwritable(folder, exc) from None
    return (folder / MODEL_FILE, folder / PARITY_FILE)


def _unwritable(folder: Path, exc: OSError) -> ExportError:
    return ExportError(f"cannot write the export to {folder}: {exc.strerror}; name a folder you can write")


def _register(
    registry: Registry,
    loaded: LoadedModel,
    graph: onnx.ModelProto,
    report: ParityReport,
    reports: dict[str, Any],
) -> str:
    """Register the graph as the next version of the source's model; its reference."""
    source = loaded.version
    made = " and ".join(
        what for what, key in (("pruned", "pruning"), ("int8", "quantization")) if key in reports
    )
    version = registry.register(
        graph,
        name=source.name,
        flavor="onnx",
        contract=source.contract,
        description=f"ONNX export ({made + ', ' if made else ''}{report.dtype}) of {source.ref}",
        lineage={
            "exported_from": str(source.ref),
            "parity": report.to_dict(),
            # the same model, so the same training data
            "training_data": source.lineage.get("training_data"),
            **reports,
        },
        reference_from=source,
    )
    return str(version.ref)
