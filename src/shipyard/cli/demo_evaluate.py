"""Step 7 of `shipyard demo`: evaluate a good and a weak credit version, gate both, promote one."""

from __future__ import annotations

from typing import TYPE_CHECKING

from shipyard.cli.evaluate import show_evaluation, show_gates
from shipyard.cli.render import console
from shipyard.datasets import fit_credit_model, make_credit
from shipyard.errors import GateError

if TYPE_CHECKING:
    import pandas as pd

    from shipyard.core.refs import ModelRef
    from shipyard.registry import Registry

__all__ = ["DEMO_POLICY", "evaluation_demo"]

DEMO_POLICY = """\
# The rules a credit model must pass before 'production' may point at it.
champion: production
rules:
  - roc_auc >= 0.60
  - roc_auc >= champion - 0.01        # no worse than the version in production
  - ece_uniform <= 0.10
  - recall >= 0.10 on employment=unemployed
  - fairness.country.demographic_parity_difference <= 0.15
  - robustness.attack.success_rate <= 0.60
"""


def evaluation_demo(reg: Registry, strong: ModelRef, credit: pd.DataFrame) -> None:
    """Evaluate a good and a weak version, gate both, promote the one that passes."""
    from shipyard.evaluation.evaluate import evaluate
    from shipyard.evaluation.gates import check_gates
    from shipyard.evaluation.policy import Policy
    from shipyard.evaluation.report import write_report

    console.print("\n7. evaluation and gates: a holdout of 2,000 labelled rows, a policy, two candidates")
    holdout = make_credit(2000, seed=99)
    weak = reg.register(
        fit_credit_model(credit.head(300)),
        name="credit",
        train_data=credit,
        target="default",
        description="the same model trained on 300 rows: a weaker challenger",
    )
    policy_file = reg.settings.home / "gates.yaml"
    policy_file.parent.mkdir(parents=True, exist_ok=True)
    policy_file.write_text(DEMO_POLICY, encoding="utf-8")
    policy = Policy.read(policy_file)
    reports = reg.settings.home / "reports"
    for ref in (strong, weak.ref):
        result = evaluate(
            str(ref),
            holdout,
            target="default",
            sensitive=["country"],
            slices=["employment", "age:3"],
            registry=reg,
        )
        gates = check_gates(str(ref), policy, registry=reg)
        report = write_report(reports / f"{ref.name}-{ref.version}.html", result, gates)
        show_evaluation(result)
        show_gates(gates)
        console.print(f"   report: {report}")
        try:
            reg.set_alias(ref, "production")
            console.print(f"[green]   promoted[/]: credit@production -> {ref}\n")
        except GateError as exc:
            console.print("[red]   promotion refused[/]:", end=" ")
            console.print(str(exc), markup=False, highlight=False)
    console.print(
        f"   policy: {policy_file}; try 'shipyard gates show credit' or "
        "'shipyard models alias credit:N production --force --reason ...'"
    )
