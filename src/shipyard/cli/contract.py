"""`shipyard contract show|edit`: read a version's contract as YAML; edit it into a new version."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
import yaml

from shipyard.cli.render import console, emit_json
from shipyard.cli.session import registry
from shipyard.errors import ContractError, InputError

__all__ = ["app"]

app = typer.Typer(help="Show and edit the feature contract of a version.", no_args_is_help=True)


@app.command()
def show(
    ref: Annotated[str, typer.Argument(help="NAME, NAME:VERSION or NAME@ALIAS.")],
    json: Annotated[bool, typer.Option("--json", help="Print JSON instead of YAML.")] = False,
) -> None:
    """Print the contract as YAML (the format `contract edit` reads)."""
    with registry() as reg:
        version = reg.get(ref)
    if json:
        emit_json(version.contract.to_dict())
        return
    typer.echo(
        f"# contract of {version.ref}; edit and apply with 'shipyard contract edit {version.ref} --file FILE'"
    )
    typer.echo(yaml.safe_dump(version.contract.to_dict(), sort_keys=False, allow_unicode=True), nl=False)


@app.command()
def edit(
    ref: Annotated[str, typer.Argument(help="The version whose contract to change.")],
    file: Annotated[Path, typer.Option("--file", help="The new contract, YAML or JSON.")],
    json: Annotated[bool, typer.Option("--json", help="Print the new version as JSON.")] = False,
) -> None:
    """Make a new version with the same model and the contract from FILE."""
    if not file.is_file():
        raise InputError(f"contract file {file} does not exist")
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ContractError(f"{file} is not valid YAML: {exc}") from None
    from shipyard.core.contract import Contract

    contract = Contract.from_dict(data)
    with registry() as reg:
        version = reg.edit_contract(ref, contract)
    if json:
        emit_json(version.to_dict())
        return
    console.print(
        f"contract edited: new version [bold]{version.ref}[/] "
        f"(derived from {version.lineage.get('derived_from')})"
    )
