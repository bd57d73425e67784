"""`shipyard predict`: score a file of rows with a registered version."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from shipyard.cli.options import TrustPickleOpt
from shipyard.cli.render import console, emit_json, table
from shipyard.cli.session import registry

__all__ = ["predict"]

_SHOWN_ROWS = 20


def predict(
    ref: Annotated[str, typer.Argument(help="NAME, NAME:VERSION or NAME@ALIAS.")],
    input: Annotated[Path, typer.Option("--input", "-i", help="Rows: .csv, .parquet or .jsonl.")],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write predictions here (.parquet, .csv, .jsonl).")
    ] = None,
    trust_pickle: TrustPickleOpt = False,
    json: Annotated[bool, typer.Option("--json", help="Print JSON records.")] = False,
) -> None:
    """Predict every row of a file; any row that breaks the contract rejects the whole file."""
    import pyarrow as pa

    from shipyard.store.tabular import read_rows, write_table

    with registry() as reg:
        loaded = reg.load(ref, trust_pickle=trust_pickle)
    rows = read_rows(input, contract=loaded.contract)
    predictions = loaded.predict(rows)
    if output is not None:
        columns = {
            "row": list(range(predictions.n_rows)),
            "model_version": [str(loaded.version.ref)] * predictions.n_rows,
        }
        for name, values in predictions.to_columns().items():
            columns[name] = values.tolist()
        write_table(pa.table(columns), output)
    if json:
        emit_json(
            {
                "model": loaded.version.name,
                "version": loaded.version.version,
                "predictions": predictions.to_records(),
            }
        )
        return
    if output is not None:
        console.print(f"wrote {predictions.n_rows} prediction(s) of {loaded.version.ref} to {output}")
        return
    columns_out = predictions.to_columns()
    names = list(columns_out)
    shown = min(predictions.n_rows, _SHOWN_ROWS)
    table(
        f"{loaded.version.ref}: {predictions.n_rows} row(s)",
        ["row", *names],
        [(i, *(_fmt(columns_out[n][i]) for n in names)) for i in range(shown)],
    )
    if predictions.n_rows > shown:
        console.print(f"... {predictions.n_rows - shown} more; use --output to keep them all")


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)
