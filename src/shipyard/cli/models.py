"""`shipyard models ...`: register, list, show, alias, tag, archive, delete, download."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from shipyard.cli.options import JsonOpt, TrustPickleOpt
from shipyard.cli.render import console, emit_json, key_values, table
from shipyard.cli.session import registry
from shipyard.core.refs import ModelRef
from shipyard.errors import RefError

if TYPE_CHECKING:
    from shipyard.registry import ModelVersion

__all__ = ["app"]

app = typer.Typer(help="Register models and manage their versions, aliases and tags.", no_args_is_help=True)


def _pairs(items: list[str] | None) -> dict[str, str]:
    pairs = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise RefError(f"tag {item!r} has no '='; expected KEY=VALUE (e.g. team=risk)")
        pairs[key] = value
    return pairs


def show_version(version: ModelVersion) -> None:
    """Print one version's facts and contract summary."""
    lineage = version.lineage
    data = lineage.get("training_data") or {}
    git = lineage.get("git") or {}
    key_values(
        f"{version.ref}",
        [
            ("status", version.status),
            ("flavor", f"{version.flavor} ({lineage.get('framework')} {lineage.get('framework_version')})"),
            ("task", version.contract.task),
            ("classes", None if version.contract.classes is None else list(version.contract.classes)),
            ("aliases", ", ".join(version.aliases) or "-"),
            ("tags", ", ".join(f"{k}={v}" for k, v in version.tags.items()) or "-"),
            ("created", f"{version.created_at:%Y-%m-%d %H:%M:%S} UTC by {lineage.get('registered_by')}"),
            ("artifact", f"sha256:{version.artifact_digest[:16]}... ({version.artifact_size:,} B)"),
            (
                "training data",
                f"{data.get('rows', '?')} rows, sha256:{str(data.get('fingerprint', ''))[:16]}..."
                if data
                else "-",
            ),
            ("git", f"{git.get('commit', '')[:12]}{' (dirty)' if git.get('dirty') else ''}" if git else "-"),
            ("derived from", lineage.get("derived_from")),
            ("exported from", lineage.get("exported_from")),
            ("parity", _parity(lineage.get("parity"))),
            ("description", version.description or "-"),
            ("importance", _importance_source(version)),
        ],
    )
    table(
        "features",
        ["name", "dtype", "range / categories", "missing", "out of range", "unseen"],
        [
            (
                f.name + (" (pii)" if f.pii else ""),
                f.dtype.value,
                f"[{f.min}, {f.max}]" if f.is_numeric else _categories(f.categories),
                f.on_missing,
                f.on_out_of_range if f.is_numeric else "",
                f.on_unseen_category if f.categories is not None else "",
            )
            for f in version.contract.features
        ],
    )

    if version.importance:
        importance = sorted(version.importance.items(), key=lambda kv: -kv[1])
        top = importance[0][1] or 1.0
        table(
            "importance at registration (mean |attribution|)",
            ["feature", "importance", ""],
            [(name, f"{value:.4g}", "#" * round(20 * value / top)) for name, value in importance],
        )


def _parity(report: dict[str, Any] | None) -> str | None:
    """One line of an export's stored parity report, or None for a version that is no export."""
    if not report:
        return None
    metric = report.get("metric") or {}
    return (
        f"{'passed' if report.get('passed') else 'FAILED'} ({report.get('dtype')}): "
        f"{report.get('rows')} rows, "
        f"max |diff| {report.get('max_abs_diff', 0):.3g}, {report.get('label_mismatches')} label mismatches, "
        f"{metric.get('name')} delta {metric.get('delta', 0):+.3g}"
    )


def _importance_source(version: ModelVersion) -> str:
    """How the stored importance was computed, or why there is none."""
    stored = version.explanation or {}
    if version.importance:
        return (
            f"mean |attribution| on {stored.get('importance_rows')} training rows "
            f"({stored.get('method')}, {stored.get('space')})"
        )
    if stored.get("importance_error"):
        return f"not computed: {stored['importance_error']}"
    return "- (registered without training data)"


def _categories(categories: tuple[object, ...] | None) -> str:
    if categories is None:
        return "any"
    shown = ", ".join(str(c) for c in categories[:6])
    return shown + (f", ... ({len(categories)})" if len(categories) > 6 else "")


@app.command()
def register(
    path: Annotated[
        Path,
        typer.Argument(help="Model file: .skops, .ubj, .txt/.lgb, .onnx; .pkl/.joblib with --trust-pickle."),
    ],
    name: Annotated[str, typer.Option(help="The model's name.")],
    train_data: Annotated[
        Path | None,
        typer.Option(help="Training rows (CSV, Parquet, JSON Lines) to infer the contract and profile."),
    ] = None,
    target: Annotated[str | None, typer.Option(help="The label column in --train-data.")] = None,
    task: Annotated[str | None, typer.Option(help="classification or regression.")] = None,
    flavor: Annotated[str | None, typer.Option(help="Force a flavor.")] = None,
    description: Annotated[str, typer.Option(help="Free text.")] = "",
    tag: Annotated[list[str] | None, typer.Option(help="KEY=VALUE; repeatable.")] = None,
    alias: Annotated[str | None, typer.Option(help="Point this alias at the new version.")] = None,
    trust_pickle: TrustPickleOpt = False,
    trust_type: Annotated[
        list[str] | None,
        typer.Option(help="A type or function a skops file may use beyond the trusted ones; repeatable."),
    ] = None,
    json: JsonOpt = False,
) -> None:
    """Register a model file as the next version of NAME."""
    from shipyard.store.tabular import read_rows

    data = read_rows(train_data) if train_data is not None else None
    with registry() as reg:
        version = reg.register_file(
            path,
            name=name,
            train_data=data,
            target=target,
            task=task,
            flavor=flavor,
            description=description,
            tags=_pairs(tag),
            alias=alias,
            trust_pickle=trust_pickle,
            trusted_types=tuple(trust_type or ()),
        )
    if json:
        emit_json(version.to_dict())
        return
    console.print(
        f"registered [bold]{version.ref}[/] ({version.flavor}, "
        f"{len(version.contract.features)} features"
        f"{', alias ' + alias if alias else ''})"
    )


@app.command("list")
def list_models(
    name: Annotated[str | None, typer.Option(help="Glob or substring of the name.")] = None,
    tag: Annotated[str | None, typer.Option(help="KEY or KEY=VALUE.")] = None,
    alias: Annotated[str | None, typer.Option(help="Only models with this alias.")] = None,
    json: JsonOpt = False,
) -> None:
    """List registered models."""
    with registry() as reg:
        found = reg.list_models(name=name, tag=tag, alias=alias)
    if json:
        emit_json([m.to_dict() for m in found])
        return
    if not found:
        console.print("no models registered" if not (name or tag or alias) else "no model matches")
        return
    table(
        None,
        ["name", "latest", "versions", "aliases", "tags", "updated"],
        [
            (
                m.name,
                m.latest_version or "-",
                m.version_count,
                ", ".join(f"{a}->{v}" for a, v in m.aliases.items()) or "-",
                ", ".join(f"{k}={v}" for k, v in m.tags.items()) or "-",
                f"{m.updated_at:%Y-%m-%d %H:%M}",
            )
            for m in found
        ],
    )


@app.command()
def show(
    ref: Annotated[str, typer.Argument(help="NAME, NAME:VERSION or NAME@ALIAS.")],
    json: JsonOpt = False,
) -> None:
    """Show a model and its versions (NAME), or one version (NAME:VERSION, NAME@ALIAS)."""
    parsed = ModelRef.parse(ref)
    with registry() as reg:
        if parsed.is_latest and ":" not in ref:
            model = reg.get_model(parsed.name)
            versions = reg.versions(parsed.name)
            if json:
                emit_json(model.to_dict() | {"versions": [v.to_dict() for v in versions]})
                return
            key_values(
                model.name,
                [
                    ("description", model.description or "-"),
                    ("latest", model.latest_version),
                    ("aliases", ", ".join(f"{a}->{v}" for a, v in model.aliases.items()) or "-"),
                    ("tags", ", ".join(f"{k}={v}" for k, v in model.tags.items()) or "-"),
                ],
            )
            table(
                "versions",
                ["version", "status", "flavor", "aliases", "tags", "created"],
                [
                    (
                        v.version,
                        v.status,
                        v.flavor,
                        ", ".join(v.aliases) or "-",
                        ", ".join(f"{k}={x}" for k, x in v.tags.items()) or "-",
                        f"{v.created_at:%Y-%m-%d %H:%M}",
                    )
                    for v in versions
                ],
            )
            return
        version = reg.get(parsed)
    if json:
        emit_json(version.to_dict())
        return
    show_version(version)


@app.command("alias")
def alias_(
    ref: Annotated[str, typer.Argument(help="NAME:VERSION to point the alias at.")],
    alias: Annotated[str, typer.Argument(help="The alias, e.g. staging.")],
    force: Annotated[
        bool, typer.Option("--force", help="Move a protected alias without a passing gate result.")
    ] = False,
    reason: Annotated[
        str | None, typer.Option("--reason", help="Why the gates are overridden (required with --force).")
    ] = None,
) -> None:
    """Point ALIAS at a version; a protected alias (production) needs a passing gate result."""
    with registry() as reg:
        version = reg.aliases.set(ref, alias, force=force, reason=reason)
        forced = force and reg.history(version.name, limit=1)[0].detail.get("forced")
    console.print(f"{version.name}@{alias} -> {version.ref}")
    if forced:
        console.print(f"[bold yellow]gates overridden[/] and recorded: {reason}")


@app.command()
def unalias(
    ref: Annotated[str, typer.Argument(help="NAME@ALIAS, or NAME followed by ALIAS.")],
    alias: Annotated[str | None, typer.Argument(help="The alias, when REF is a NAME.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Remove a protected alias.")] = False,
    reason: Annotated[
        str | None, typer.Option("--reason", help="Why a protected alias is removed (recorded).")
    ] = None,
) -> None:
    """Remove an alias (a protected one needs --force and --reason)."""
    parsed = ModelRef.parse(ref)
    name_alias = parsed.alias or alias
    if name_alias is None:
        raise RefError(f"which alias of {parsed.name!r}? give NAME@ALIAS or NAME ALIAS")
    with registry() as reg:
        reg.aliases.remove(parsed.name, name_alias, force=force, reason=reason)
    console.print(f"removed {parsed.name}@{name_alias}")


@app.command()
def tag(
    ref: Annotated[str, typer.Argument(help="NAME:VERSION (a version) or NAME (the model).")],
    pairs: Annotated[list[str] | None, typer.Argument(help="KEY=VALUE ...")] = None,
    remove: Annotated[list[str] | None, typer.Option(help="Remove the tag KEY; repeatable.")] = None,
) -> None:
    """Set or remove tags."""
    with registry() as reg:
        for key, value in _pairs(pairs).items():
            reg.tags.set(ref, key, value)
        for key in remove or []:
            reg.tags.remove(ref, key)
    console.print(f"tagged {ref}")


@app.command()
def describe(
    ref: Annotated[str, typer.Argument(help="NAME:VERSION or NAME.")],
    text: Annotated[str, typer.Argument(help="The description.")],
) -> None:
    """Set the description of a version or model."""
    with registry() as reg:
        reg.tags.describe(ref, text)
    console.print(f"described {ref}")


@app.command()
def archive(ref: Annotated[str, typer.Argument(help="NAME:VERSION.")]) -> None:
    """Archive a version: hidden from latest, never loaded by alias."""
    with registry() as reg:
        version = reg.lifecycle.archive(ref)
    console.print(f"archived {version.ref}")


@app.command()
def restore(ref: Annotated[str, typer.Argument(help="NAME:VERSION.")]) -> None:
    """Bring an archived version back."""
    with registry() as reg:
        version = reg.lifecycle.restore(ref)
    console.print(f"restored {version.ref}")


@app.command("delete")
def delete_(
    ref: Annotated[str, typer.Argument(help="NAME:VERSION.")],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask.")] = False,
) -> None:
    """Delete a version (refused while an alias points at it)."""
    if not yes:
        typer.confirm(f"delete {ref} and its artifact for good?", abort=True)
    with registry() as reg:
        reg.lifecycle.delete(ref)
    console.print(f"deleted {ref}")


@app.command()
def download(
    ref: Annotated[str, typer.Argument(help="NAME:VERSION or NAME@ALIAS.")],
    out: Annotated[Path, typer.Option("--out", help="A new (or empty) folder to write into.")],
) -> None:
    """Write a version's model in its framework's own format (.skops, .ubj, .txt, .onnx) and its
    contract.json into a new folder."""
    from shipyard.registry.downloads import download as write_files

    with registry() as reg:
        files = write_files(reg, ref, out=out)
    console.print(f"wrote {', '.join(str(f) for f in files)}")


@app.command()
def history(
    name: Annotated[str | None, typer.Argument(help="Only this model's changes.")] = None,
    limit: Annotated[int, typer.Option(help="How many changes.")] = 50,
    json: JsonOpt = False,
) -> None:
    """The recorded changes, newest first."""
    with registry() as reg:
        found = reg.history(name, limit=limit)
    if json:
        emit_json([c.to_dict() for c in found])
        return
    table(
        None,
        ["at", "actor", "action", "model", "version", "detail"],
        [
            (
                f"{c.at:%Y-%m-%d %H:%M:%S}",
                c.actor,
                c.action,
                c.model,
                c.version or "-",
                ", ".join(f"{k}={v}" for k, v in c.detail.items()),
            )
            for c in found
        ],
    )
