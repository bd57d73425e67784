"""`shipyard explain`: why a version predicts what it does, for the rows of a file; and
`shipyard explain show ID`: an explanation a server answered, read back by its request id.

`shipyard explain REF --input rows.csv` is short for `shipyard explain rows REF ...`: the group
runs `rows` when its first argument names no sub-command.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from shipyard.cli.options import JsonOpt, TrustPickleOpt
from shipyard.cli.render import console, emit_json, table
from shipyard.cli.session import registry

__all__ = ["explain_app"]

_SHOWN_ROWS = 20


class _RowsByDefault(TyperGroup):
    """A group whose first argument, when it names no sub-command, is the model for `rows`."""

    # `ctx` is Typer's own copy of click's Context, which it does not export.
    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if args and not args[0].startswith("-") and args[0] not in self.commands:
            args = ["rows", *args]
        return super().parse_args(ctx, args)


explain_app = typer.Typer(
    cls=_RowsByDefault,
    help="Explain predictions: `shipyard explain REF --input rows.csv`, or `shipyard explain show ID`.",
    no_args_is_help=True,
)


@explain_app.command("rows")
def rows_command(
    ref: Annotated[str, typer.Argument(help="NAME, NAME:VERSION or NAME@ALIAS.")],
    input: Annotated[Path, typer.Option("--input", "-i", help="Rows: .csv, .parquet or .jsonl.")],
    method: Annotated[
        str, typer.Option("--method", "-m", help="auto, tree_shap, linear, exact, permutation or lime.")
    ] = "auto",
    output: Annotated[
        str | None, typer.Option("--output", "-o", help="Only this output: a class label, or 'value'.")
    ] = None,
    top: Annotated[int, typer.Option("--top", "-k", min=1, max=1000, help="Top features shown per row.")] = 5,
    trust_pickle: TrustPickleOpt = False,
    json: JsonOpt = False,
) -> None:
    """Predict and explain every row of a file (any row that breaks the contract rejects it)."""
    from shipyard.explanations.explaining import explain_rows
    from shipyard.store.tabular import read_rows

    with registry() as reg:
        loaded = reg.load(ref, trust_pickle=trust_pickle)
    rows = read_rows(input, contract=loaded.contract)
    explanation = explain_rows(loaded, rows, method=method)
    body = explanation.to_dict(top=top, output=output)
    predictions = explanation.scored.predictions
    labels = predictions.values.tolist() if predictions is not None else []
    if json:
        emit_json(
            {
                "model": loaded.version.name,
                "version": loaded.version.version,
                "predictions": labels,
                "explanation": body,
            }
        )
        return
    _tables(str(loaded.version.ref), labels, body)


@explain_app.command("show")
def show(
    request_id: Annotated[str, typer.Argument(metavar="ID", help="The request id the server answered with.")],
    model: Annotated[str | None, typer.Option("--model", help="The model that answered it.")] = None,
    json: JsonOpt = False,
) -> None:
    """Show an explanation a server answered, from the explanation log of the store (the
    deployer role: it holds another caller's request values)."""
    from shipyard.explanations.records import ExplanationLog
    from shipyard.security.access import Action
    from shipyard.security.encryption import envelope_for

    with registry() as reg:
        reg.allow(Action.READ_LOGS, model)
        log = ExplanationLog(reg.settings.store_url, cipher=envelope_for(reg.settings))
        record = log.read(request_id, model=model)
        if model is None:
            reg.allow(Action.READ_LOGS, record.model)
    if json:
        emit_json(record.to_dict())
        return
    where = f"{record.model}:{record.version}, request {record.request_id} ({record.protocol})"
    _tables(where, record.predictions, record.explanation)


def _tables(where: str, labels: list[Any], body: dict[str, Any]) -> None:
    """One table per row: its prediction, and its top features with their values and attributions."""
    n = len(body.get("top_features") or [])
    if not n:
        console.print(f"{where}: no row was explained")
        return
    console.print(
        f"{where}: {n} row(s) explained by {body['method']} in {body['space']} space "
        f"(outputs {', '.join(body['outputs'])})"
    )
    for r in range(min(n, _SHOWN_ROWS)):
        label = labels[r] if r < len(labels) else "?"
        error = body["additivity_error"][r]
        table(
            f"row {r}: predicted {label} (additivity error {_fmt(error)})",
            ["feature", "value", "attribution"],
            [(e["feature"], _fmt(e["value"]), _fmt(e["attribution"])) for e in body["top_features"][r]],
        )
    if n > _SHOWN_ROWS:
        console.print(f"... {n - _SHOWN_ROWS} more row(s); use --json to see them all")


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)
