"""`shipyard export REF --to onnx`: convert a version for the edge, gated by parity."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from shipyard.cli.options import JsonOpt
from shipyard.cli.render import console, emit_json, table
from shipyard.cli.session import registry
from shipyard.errors import ExportError

if TYPE_CHECKING:
    from shipyard.edge.parity import ParityReport

__all__ = ["export", "show_report"]


def export(
    ref: Annotated[str, typer.Argument(help="The version: NAME:VERSION or NAME@ALIAS.")],
    to: Annotated[str, typer.Option("--to", help="What to export to: onnx (c: not wired yet).")] = "onnx",
    out: Annotated[
        Path | None, typer.Option("--out", help="A new (or empty) folder for model.onnx and parity.json.")
    ] = None,
    dtype: Annotated[
        str, typer.Option("--dtype", help="float64 (parity within 1e-6) or float32 (within 1e-4).")
    ] = "float64",
    register: Annotated[
        bool, typer.Option("--register", help="Register the export as the next version of the model.")
    ] = False,
    data: Annotated[
        Path | None, typer.Option("--data", "-d", help="Labelled rows for the headline metric (.csv, ...).")
    ] = None,
    target: Annotated[str | None, typer.Option("--target", "-t", help="The label column of --data.")] = None,
    json: JsonOpt = False,
) -> None:
    """Export a version (ONNX), check it answers as the version does, then write or register it.

    Without --out or --register the export is checked and nothing is written. A failing parity
    gate exits 1 and names the rows and features that differ.
    """
    from shipyard.edge.export import export as run_export
    from shipyard.edge.parity import Holdout

    if (data is None) != (target is None):
        raise ExportError("--data and --target go together: the labelled rows and their label column")
    with registry() as reg:
        holdout = None
        if data is not None and target is not None:
            holdout = Holdout.read(data, target=target, contract=reg.get(ref).contract)
        result = run_export(
            ref,
            to=to,
            out=out,
            dtype=dtype,
            register=register,
            registry=reg,
            holdout=holdout,
        )
    if json:
        emit_json(result.to_dict())
        return
    show_report(result.report, title=f"parity of the {to} export of {result.source}")
    if result.out is not None:
        console.print(f"wrote {', '.join(str(f) for f in result.files)}")
    if result.registered is not None:
        console.print(f"registered [bold]{result.registered}[/] (onnx, exported from {result.source})")
    if result.out is None and result.registered is None:
        console.print("checked only: nothing written (give --out DIR or --register)")


def show_report(report: ParityReport, *, title: str) -> None:
    """Print a parity report: the verdict and its numbers, then the rows that differ."""
    table(
        title,
        ["verdict", "dtype", "rows compared", "max |diff|", "label mismatches", "metric", "delta"],
        [
            (
                "passed" if report.passed else "FAILED",
                report.dtype,
                ", ".join(f"{n} {k}" for k, n in report.rows_from.items()) or report.rows,
                f"{report.max_abs_diff:.3g} (<= {report.tolerance:g})",
                report.label_mismatches,
                f"{report.metric} {report.metric_source:.6g} -> {report.metric_export:.6g}",
                f"{report.metric_delta:+.3g} (<= {report.metric_tolerance:g})",
            )
        ],
    )
    console.print(f"metric measured on {report.metric_data}")
