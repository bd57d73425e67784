"""`shipyard evaluate` and `shipyard gates ...`: measure a version, check it against a policy."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from shipyard.cli.options import JsonOpt, TrustPickleOpt
from shipyard.cli.render import console, emit_json, table
from shipyard.cli.session import registry
from shipyard.core.metric_table import headline_metrics

__all__ = ["evaluate", "gates_app", "show_evaluation", "show_gates"]

gates_app = typer.Typer(
    help="Check versions against a gates policy; see their gate results.", no_args_is_help=True
)

DataOpt = Annotated[Path, typer.Option("--data", "-d", help="Labelled rows: .csv, .parquet or .jsonl.")]
TargetOpt = Annotated[str, typer.Option("--target", "-t", help="The label column.")]
SensitiveOpt = Annotated[
    str | None, typer.Option("--sensitive", help="Sensitive features for fairness, comma-separated.")
]
SliceOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--slice", help="Break metrics down by FEATURE, FEATURE:N bins or FEATURE:E1,E2 (repeatable)."
    ),
]
ReportOpt = Annotated[
    Path | None, typer.Option("--report", help="Write the self-contained HTML report here.")
]
JsonFileOpt = Annotated[Path | None, typer.Option("--json-out", help="Write the same numbers as JSON here.")]
SummaryOpt = Annotated[
    Path | None,
    typer.Option(
        "--summary", help='Add a Markdown summary to the end of this file (e.g. "$GITHUB_STEP_SUMMARY").'
    ),
]


def _options(
    sensitive: str | None,
    slices: list[str] | None,
    positive: str | None,
    threshold: float | None,
    bins: int,
    resamples: int,
    seed: int,
    robustness: bool,
) -> dict[str, Any]:
    return {
        "sensitive": [s.strip() for s in (sensitive or "").split(",") if s.strip()],
        "slices": slices or [],
        "positive": positive,
        "threshold": threshold,
        "bins": bins,
        "resamples": resamples,
        "seed": seed,
        "robust": robustness,
    }


def evaluate(
    ref: Annotated[str, typer.Argument(help="The version: NAME:VERSION or NAME@ALIAS.")],
    data: DataOpt,
    target: TargetOpt,
    sensitive: SensitiveOpt = None,
    slices: SliceOpt = None,
    positive: Annotated[
        str | None, typer.Option(help="The positive class for fairness (multi-class).")
    ] = None,
    threshold: Annotated[
        float | None, typer.Option(help="Also the metrics at this probability cut-off.")
    ] = None,
    bins: Annotated[int, typer.Option(help="Calibration bins.")] = 10,
    resamples: Annotated[int, typer.Option(help="Bootstrap resamples (0: none).")] = 200,
    seed: Annotated[int, typer.Option(help="Seed of the bootstrap and robustness checks.")] = 0,
    robustness: Annotated[bool, typer.Option(help="Measure robustness (noise, swaps, attack).")] = True,
    explain: Annotated[
        bool, typer.Option(help="Explain a sample of up to 300 rows for the report's SHAP summary plot.")
    ] = True,
    champion: Annotated[
        str,
        typer.Option(
            help="Compare with the version behind this alias ('' for none; --policy names its own)."
        ),
    ] = "production",
    policy: Annotated[Path | None, typer.Option(help="Also check this gates policy.")] = None,
    trust_pickle: TrustPickleOpt = False,
    report: ReportOpt = None,
    json_out: JsonFileOpt = None,
    summary: SummaryOpt = None,
    json: JsonOpt = False,
) -> None:
    """Evaluate a version on labelled data and store the result on it (and the champion's)."""
    from shipyard.evaluation.evaluate import evaluate as run
    from shipyard.evaluation.gates import check_gates
    from shipyard.evaluation.policy import Policy
    from shipyard.evaluation.report import report_json, write_report

    options = _options(sensitive, slices, positive, threshold, bins, resamples, seed, robustness)
    rules = Policy.read(policy) if policy is not None else None
    # With a policy, the champion is the one its relative rules compare with.
    compare = rules.champion if rules is not None else (champion or None)
    with registry() as reg:
        result = run(
            ref, data, target=target, champion=compare, trust_pickle=trust_pickle, registry=reg,
            explain=explain, **options,
        )  # fmt: skip
        gates = None
        if rules is not None:
            gates = check_gates(str(result.ref), rules, registry=reg)
    written = []
    if report is not None:
        written.append(write_report(report, result, gates))
    if json_out is not None:
        written.append(write_report(json_out.with_suffix(".json"), result, gates))
    if summary is not None:
        from shipyard.evaluation.summary import add_summary

        written.append(add_summary(summary, result, gates))
    if json:
        emit_json(report_json(result, gates))
        return
    show_evaluation(result)
    if gates is not None:
        show_gates(gates)
    for path in written:
        console.print(f"wrote {path}")
    if gates is not None and not gates.passed:
        raise typer.Exit(1)


@gates_app.command("check")
def check(
    ref: Annotated[str, typer.Argument(help="The version: NAME:VERSION.")],
    policy: Annotated[
        Path | None, typer.Option(help="The gates policy (YAML); default SHIPYARD_GATES_POLICY.")
    ] = None,
    data: Annotated[Path | None, typer.Option("--data", "-d", help="Evaluate on these rows first.")] = None,
    target: Annotated[str | None, typer.Option("--target", "-t", help="The label column of --data.")] = None,
    sensitive: SensitiveOpt = None,
    slices: SliceOpt = None,
    report: ReportOpt = None,
    summary: SummaryOpt = None,
    json: JsonOpt = False,
) -> None:
    """Check a version against a policy (vs the version behind the champion alias); exit 1 on failure."""
    from shipyard.evaluation.gates import check_gates
    from shipyard.evaluation.report import write_report

    extra: dict[str, Any] = {}
    if data is not None:
        extra = {
            "sensitive": [s.strip() for s in (sensitive or "").split(",") if s.strip()],
            "slices": slices or [],
        }
    with registry() as reg:
        result = check_gates(ref, policy, data=data, target=target, registry=reg, **extra)
    if report is not None:
        write_report(report, result.evaluation, result)
    if summary is not None:
        from shipyard.evaluation.summary import add_summary

        add_summary(summary, result.evaluation, result)
    if json:
        emit_json(result.to_dict())
    else:
        show_gates(result)
        if report is not None:
            console.print(f"wrote {report}")
    if not result.passed:
        raise typer.Exit(1)


@gates_app.command("show")
def show(
    ref: Annotated[str, typer.Argument(help="NAME for every version, or NAME:VERSION.")],
    limit: Annotated[int, typer.Option(help="How many results.")] = 20,
    json: JsonOpt = False,
) -> None:
    """The newest gate results of a model or a version."""
    with registry() as reg:
        records = reg.results.gate_results(ref, limit=limit)
    if json:
        emit_json([{"id": r.id, "ref": str(r.ref), "at": r.created_at.isoformat(), "actor": r.actor,
                    "alias": r.alias, "champion_version": r.champion_version, "passed": r.passed,
                    "rules": r.body.get("rules", [])} for r in records])  # fmt: skip
        return
    if not records:
        console.print(f"no gate results for {ref}")
        return
    table(
        f"gate results of {ref}",
        ["id", "version", "alias", "champion", "verdict", "failed rules", "when", "by"],
        [
            (
                r.id,
                r.ref,
                r.alias,
                "-" if r.champion_version is None else f"{r.name}:{r.champion_version}",
                "pass" if r.passed else "FAIL",
                "; ".join(x["rule"] for x in r.body.get("rules", []) if not x.get("passed")) or "-",
                f"{r.created_at:%Y-%m-%d %H:%M}",
                r.actor,
            )
            for r in records
        ],
    )


def show_evaluation(result: Any) -> None:
    """Print an evaluation's headline metrics (champion beside it), slices, fairness and robustness."""
    rival = result.champion
    data = result.data
    names = [n for n in headline_metrics(result.task) if isinstance(result.metrics.get(n), int | float)]
    columns = ["metric", str(result.ref), "95% interval"] + (
        [f"{rival.ref} ({result.champion_alias})"] if rival else []
    )
    rows = []
    for name in names:
        ci = result.confidence.get(name)
        row = [name, f"{result.metrics[name]:.4f}", f"[{ci['low']:.4f}, {ci['high']:.4f}]" if ci else ""]
        if rival:
            theirs = rival.metrics.get(name)
            row.append(f"{theirs:.4f}" if isinstance(theirs, int | float) else "-")
        rows.append(row)
    rejected = f", {data['rejected']} rejected by the contract" if data.get("rejected") else ""
    table(f"{result.ref} on {data['evaluated']} row(s){rejected} (evaluation {result.id})", columns, rows)
    for violation in data.get("violations", [])[:3]:
        console.print(f"  rejected: {violation}", markup=False)
    if result.champion_error:
        console.print(f"champion not compared: {result.champion_error}", markup=False)
    key = "f1" if "f1" in result.metrics else ("f1_macro" if result.task == "classification" else "mae")
    for name, entry in result.slices.items():
        table(
            f"slice {name} ({entry['kind']})",
            ["group", "rows", key],
            [(g["value"], g["rows"], _num(g["metrics"].get(key))) for g in entry["groups"]],
        )
    for name, entry in result.fairness.items():
        summary = {k: v for k, v in entry.items() if k not in ("groups", "positive")}
        console.print(
            f"fairness by {name}: " + ", ".join(f"{k} {_num(v)}" for k, v in summary.items()), markup=False
        )
    _show_explanations(result.explanations)
    robust = result.robustness
    if robust:
        noise, swap, attack = robust.get("noise", {}), robust.get("swap", {}), robust.get("attack", {})
        console.print(
            f"robustness: noise stability {_num(noise.get('stability', noise.get('relative_change')))}, "
            f"swap stability {_num(swap.get('stability'))}, attack success "
            f"{_num(attack.get('success_rate'))} (eps {attack.get('eps')} x spread, {attack.get('queries')} "
            f"queries, sanitised share {_num(attack.get('sanitised_share'))})",
            markup=False,
        )


def _show_explanations(explanations: Any) -> None:
    """One line: the features that matter most on the explained sample, or why none were."""
    from shipyard.evaluation.explanations import top_features

    if not explanations:
        return
    top = top_features(explanations)
    if explanations.get("error"):
        console.print(f"explanations: not computed: {explanations['error']}", markup=False)
    elif top:
        shares = explanations.get("importance") or {}
        console.print(
            f"top features (mean |attribution| of {explanations.get('output')} on "
            f"{explanations.get('rows')} row(s), {explanations.get('method')}): "
            + ", ".join(f"{name} {_num(shares.get(name))}" for name in top),
            markup=False,
        )


def show_gates(result: Any) -> None:
    """Print a gate result: each rule's value, bound and verdict."""
    table(
        f"gates of {result.ref} vs {result.champion or 'no champion'} ({result.alias}): "
        + ("PASSED" if result.passed else "FAILED"),
        ["rule", "value", "bound", "verdict", "reason"],
        [
            (r.rule.text, _num(r.value), _num(r.limit), "pass" if r.passed else "FAIL", r.reason)
            for r in result.results
        ],
    )
    for note in result.notes:
        console.print(note, markup=False)


def _num(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)
