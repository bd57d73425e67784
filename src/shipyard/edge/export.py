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
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.core.batch import Batch, Predictions
from shipyard.edge.onnx_export import read_ensemble, refuse_flavor, to_onnx
from shipyard.edge.parity import Holdout, ParityReport, check_parity
from shipyard.errors import ExportError, ParityError, UnsupportedExportError

if TYPE_CHECKING:
    import onnx

    from shipyard.core.contract import Contract
    from shipyard.registry.loaded import LoadedModel
    from shipyard.registry.registry import Registry

__all__ = ["TARGETS", "ExportResult", "export", "onnx_scorer"]

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
        model: the exported graph.
    """

    source: str
    to: str
    dtype: str
    report: ParityReport
    out: Path | None = None
    files: tuple[Path, ...] = ()
    registered: str | None = None
    model: Any = field(default=None, repr=False, compare=False)

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
) -> ExportResult:
    """Export a version, hold it to the parity gate, then write and/or register it.

    With neither `out` nor `register`, the export is checked and nothing is written.

    Args:
        ref: the version (`credit:3`, `credit@production`).
        to: 'onnx' ('c' is not wired yet).
        out: a folder to write `model.onnx` and `parity.json` into; it must not exist or be empty.
        dtype: 'float64' (the default; probabilities within 1e-6) or 'float32' (within 1e-4).
        register: register the export as the next version of the same model.
        registry: the registry (the default one from the environment when omitted).
        holdout: labelled rows to measure the headline metric on (`Holdout.read` reads a file).

    Raises:
        UnsupportedExportError: the model, or a step of it, has no converter; the message names it.
        ParityError: the export does not answer as the version does; nothing was written.
        ExportError: `to` or `dtype` is unknown, or `out` is not empty.
        NotFoundError: no such version.
    """
    if to == "c":
        # TODO(lead): wire `shipyard.edge.c_code.export_c(...)` here (the C helper writes it).
        raise UnsupportedExportError("--to c is not wired yet")
    if to not in TARGETS:
        raise ExportError(f"cannot export to {to!r}; expected one of {list(TARGETS)}")
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
    graph = to_onnx(loaded, dtype=dtype)
    report = check_parity(
        loaded,
        onnx_scorer(graph, loaded.contract),
        dtype=dtype,
        holdout=holdout,
        ensemble=read_ensemble(loaded.model),
    )
    if not report.passed:
        raise ParityError(
            f"the ONNX export of {source} is refused; nothing was written.\n{report.summary()}",
            report.to_dict(),
        )
    files: tuple[Path, ...] = ()
    if folder is not None:
        files = _write(folder, graph, report)
    registered = _register(registry, loaded, graph, report) if register else None
    return ExportResult(source, to, dtype, report, folder, files, registered, graph)


def onnx_scorer(graph: onnx.ModelProto, contract: Contract) -> Callable[[Batch], Predictions]:
    """Score batches with `graph` in ONNX Runtime, as the `onnx` flavor serves it once registered."""
    from shipyard.flavors.onnx import ONNXFlavor

    flavor = ONNXFlavor()
    saved = flavor.save(graph)
    meta = dict(saved.meta) | {"task": contract.task, "classes": _classes(contract)}
    from shipyard.flavors.base import LoadOptions, SavedModel

    predictor = flavor.load(SavedModel(saved.flavor, saved.files, meta), LoadOptions())
    return predictor.predict


def _classes(contract: Contract) -> list[Any] | None:
    return None if contract.task == "regression" or contract.classes is None else list(contract.classes)


def _check_empty(folder: Path) -> None:
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise ExportError(
            f"{folder} already exists and is not an empty folder; an export writes a new folder. "
            "Name another --out, or empty it"
        )


def _write(folder: Path, graph: onnx.ModelProto, report: ParityReport) -> tuple[Path, ...]:
    """Write the graph and the report into a folder beside `folder`, then rename it into place."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        (staging / MODEL_FILE).write_bytes(graph.SerializeToString())
        (staging / PARITY_FILE).write_text(json.dumps(report.to_dict(), indent=2) + "\n")
        if folder.exists():
            folder.rmdir()  # empty, as checked before converting
        staging.chmod(0o755)
        staging.rename(folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return (folder / MODEL_FILE, folder / PARITY_FILE)


def _register(registry: Registry, loaded: LoadedModel, graph: onnx.ModelProto, report: ParityReport) -> str:
    """Register the graph as the next version of the source's model; its reference."""
    source = loaded.version
    version = registry.register(
        graph,
        name=source.name,
        flavor="onnx",
        contract=source.contract,
        description=f"ONNX export ({report.dtype}) of {source.ref}",
        lineage={
            "exported_from": str(source.ref),
            "parity": report.to_dict(),
            # the same model, so the same training data
            "training_data": source.lineage.get("training_data"),
        },
        reference_from=source,
    )
    return str(version.ref)
