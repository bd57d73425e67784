"""`shipyard export REF --to onnx`: convert a version for the edge, gated by parity."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from shipyard.cli.options import JsonOpt
from shipyard.cli.render import console, emit_json, key_values, table
from shipyard.cli.session import registry
from shipyard.errors import ExportError

if TYPE_CHECKING:
    from shipyard.edge.parity import ParityReport

__all__ = ["export", "show_pruning", "show_quantization", "show_report"]


def export(
    ref: Annotated[str, typer.Argument(help="The version: NAME:VERSION or NAME@ALIAS.")],
    to: Annotated[
        str, typer.Option("--to", help="onnx, or c (tree ensembles and linear models, with --out).")
    ] = "onnx",
    out: Annotated[
        Path | None, typer.Option("--out", help="A new (or empty) folder for the export and parity.json.")
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
    quantize: Annotated[
        str | None, typer.Option("--quantize", help="int8: quantize the MatMul/Gemm weights (ONNX).")
    ] = None,
    calibration: Annotated[
        str,
        typer.Option(
            "--calibration", help="int8 activations: dynamic, or static (from the reference profile)."
        ),
    ] = "dynamic",
    prune: Annotated[
        bool,
        typer.Option("--prune", help="Prune weights or trees first, within --max-metric-drop."),
    ] = False,
    max_metric_drop: Annotated[
        float,
        typer.Option(
            "--max-metric-drop", help="How much a headline metric may drop by --quantize or --prune."
        ),
    ] = 0.005,
    name: Annotated[
        str | None, typer.Option("--name", help="The C export's symbol prefix (the model's name).")
    ] = None,
    json: JsonOpt = False,
) -> None:
    """Export a version to ONNX or C, check it answers as the version does, then write or register it.

    Without --out or --register an ONNX export is checked and nothing is written. A failing parity
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
            quantize=quantize,
            calibration=calibration,
            prune=prune,
            max_metric_drop=max_metric_drop,
            name=name,
        )
    if json:
        emit_json(result.to_dict())
        return
    if "pruning" in result.reports:
        show_pruning(result.reports["pruning"])
    if "quantization" in result.reports:
        show_quantization(result.reports["quantization"])
    show_report(result.report, title=f"parity of the {to} export of {result.source}")
    if result.out is not None:
        console.print(f"wrote {', '.join(str(f) for f in result.files)}")
    if result.registered is not None:
        console.print(f"registered [bold]{result.registered}[/] (onnx, exported from {result.source})")
    if result.out is None and result.registered is None:
        console.print("checked only: nothing written (give --out DIR or --register)")


def show_report(report: ParityReport, *, title: str) -> None:
    """Print a parity report: the verdict and its numbers, then the rows that differ."""
    rows_from = ", ".join(f"{n} {k}" for k, n in report.rows_from.items()) or str(report.rows)
    key_values(
        title,
        [
            ("verdict", "[green]passed[/]" if report.passed else "[red]FAILED[/]"),
            ("precision", report.dtype),
            ("rows compared", rows_from),
            ("max |diff|", f"{report.max_abs_diff:.3g} (bound {report.tolerance:g})"),
            ("label mismatches", report.label_mismatches),
            (
                report.metric,
                f"{report.metric_source:.6g} -> {report.metric_export:.6g} "
                f"(delta {report.metric_delta:+.3g}, bound {report.metric_tolerance:g}; "
                f"on {report.metric_data})",
            ),
        ],
    )
    if report.differing:
        table(
            f"rows that differ (the first {len(report.differing)} of {report.differing_count})",
            ["row", "features involved", "version", "export", "|diff|"],
            [
                (
                    d.row,
                    ", ".join(f"{k}={v}" for k, v in d.features.items()),
                    d.source,
                    d.export,
                    f"{d.diff:.3g}",
                )
                for d in report.differing
            ],
        )


def show_pruning(report: dict[str, Any]) -> None:
    """Print what pruning kept and what it cost: the metric drop, size and latency before and after."""
    metric = report["metric"]
    kept = (
        f"{report['sparsity']:.0%} of weights zero"
        if report.get("sparsity") is not None
        else f"{report['trees']['after']} of {report['trees']['before']} trees"
    )
    rows: list[tuple[object, ...]] = [
        ("kept", kept, ""),
        ("worst metric drop", f"{metric['worst']} {metric['drop']:+.4f}", f"<= {metric['max_drop']}"),
    ]
    size = report.get("size")
    if size is not None:
        rows.append(("file bytes", size["file"]["before"], size["file"]["after"]))
        rows.append(("zipped bytes", size["zipped"]["before"], size["zipped"]["after"]))
    latency = report.get("latency")
    if latency is not None:
        rows.append(
            (
                "single row ms",
                f"{latency['before']['single_row_ms']:.4f}",
                f"{latency['after']['single_row_ms']:.4f}",
            )
        )
    table(f"pruning ({report['kind']})", ["", "before", "after"], rows)


def show_quantization(report: dict[str, Any]) -> None:
    """Print what int8 quantization changed: operators, size, latency and the metric drop."""
    operators = ", ".join(f"{op} {n['before']}->{n['after']}" for op, n in report["operators"].items())
    size, latency, metrics = report["size"], report["latency"], report["metrics"]
    table(
        f"int8 quantization ({report['format']})",
        ["operators changed", "size (bytes)", "single row ms", "worst metric drop"],
        [
            (
                operators or "-",
                f"{size['before']} -> {size['after']} ({size['ratio']:.1f}x smaller)",
                f"{latency['before']['single_row_ms']:.4f} -> {latency['after']['single_row_ms']:.4f}",
                f"{metrics['worst']} {metrics['drop']:+.4f} (<= {metrics['max_drop']}, on {metrics['rows']})",
            )
        ],
    )
