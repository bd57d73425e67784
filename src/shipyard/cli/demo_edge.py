"""The edge part of `shipyard demo`: a version exported to ONNX through the parity gate,
registered as a version, and served."""

from __future__ import annotations

import signal
from typing import Any

from shipyard.cli.demo_server import start_server
from shipyard.cli.export import show_report
from shipyard.cli.render import console, table
from shipyard.registry import Registry

__all__ = ["edge_demo"]


def edge_demo(reg: Registry, ref: str, rows: list[dict[str, Any]]) -> None:
    """Export `ref` to ONNX with `--register`, show its parity report, serve the export and
    compare its answers with the version's."""
    from shipyard.edge.export import export
    from shipyard.serving.client import Client

    console.rule("[bold]Edge: an ONNX export held to the parity gate, served like any version")
    console.print(f"\n20. [bold]shipyard export {ref} --to onnx --register[/]")
    result = export(ref, to="onnx", register=True, registry=reg)
    show_report(result.report, title=f"   parity of the ONNX export of {result.source}")
    exported = str(result.registered)
    console.print(f"   registered [bold]{exported}[/] (onnx flavor, lineage: exported from {result.source})")

    source = reg.load(result.source).predict(rows)
    server, url = start_server([exported])
    console.print(f"\n21. [bold]shipyard serve {exported}[/] (ONNX Runtime) answers as {result.source} does:")
    try:
        with Client(url) as client:
            served = client.predict(exported.split(":", 1)[0], rows)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    mine: Any = source.probabilities if source.probabilities is not None else []
    theirs = served.probabilities or []
    table(
        None,
        ["row", f"{result.source} (scikit-learn, in process)", f"{exported} (ONNX, served)"],
        [
            (i, f"{label} P(1)={p[1]:.6f}", f"{other} P(1)={q['1']:.6f}")
            for i, (label, p, other, q) in enumerate(
                zip(source.values, mine, served.predictions, theirs, strict=True)
            )
        ],
    )
    console.print("   export to C for micro-controllers: shipyard export REF --to c --out DIR (docs/edge.md)")
