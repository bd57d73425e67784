"""`shipyard demo`: everything built so far, on bundled and synthetic data, in under a minute.

The steps live beside this module, one module per part (`demo_evaluate`, `demo_serving`,
`demo_monitor`, `demo_rollout`, `demo_batch`, `demo_security`, `demo_package`, `demo_edge`); this module runs
them in order and none of them imports it back. The credit data and model come from `shipyard.datasets`.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Annotated, Any

import typer

from shipyard.cli.demo_evaluate import evaluation_demo
from shipyard.cli.models import show_version
from shipyard.cli.render import console, table
from shipyard.cli.session import registry
from shipyard.datasets import fit_credit_model, make_credit
from shipyard.errors import ContractViolationError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["demo"]


def demo(
    rows: Annotated[int, typer.Option(help="Rows of synthetic credit data.")] = 5000,
) -> None:
    """Register, validate, evaluate, gate, serve, monitor, roll out, score in batch, secure, package,
    export to ONNX: everything."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    started = time.perf_counter()
    console.rule("[bold]Shipyard demo: the registry, flavors and the feature contract")
    with registry() as reg:
        console.print(f"registry: {reg.meta.shown_url}\nartifacts: {reg.settings.store_url}\n")

        cancer_x, cancer_y = load_breast_cancer(return_X_y=True, as_frame=True)
        cancer = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
        cancer.fit(cancer_x, cancer_y)
        v1 = reg.register(
            cancer,
            name="cancer",
            train_data=cancer_x.assign(malignant=cancer_y),
            target="malignant",
            description="logistic regression on breast cancer",
            tags={"team": "oncology"},
        )
        console.print(
            f"1. trained and registered [bold]{v1.ref}[/] (scikit-learn, skops; "
            f"{len(v1.contract.features)} features, contract and profile inferred)"
        )

        credit = make_credit(rows)
        model = fit_credit_model(credit)
        v2 = reg.register(
            model,
            name="credit",
            train_data=credit,
            target="default",
            description="gradient boosting on synthetic credit applications",
            tags={"team": "risk"},
            metrics={"train_rows": len(credit)},
        )
        reg.set_alias(v2.ref, "staging")
        console.print(
            f"2. trained and registered [bold]{v2.ref}[/] (HistGradientBoosting "
            "with categorical features) and pointed [bold]credit@staging[/] at it\n"
        )

        table(
            "3. the registry",
            ["name", "latest", "aliases", "tags"],
            [
                (
                    m.name,
                    m.latest_version,
                    ", ".join(f"{a}->{v}" for a, v in m.aliases.items()) or "-",
                    ", ".join(f"{k}={v}" for k, v in m.tags.items()) or "-",
                )
                for m in reg.list_models()
            ],
        )
        show_version(reg.get("credit@staging"))

        loaded = reg.load("credit@staging")
        sample = credit.drop(columns=["default"]).head(3)
        predictions = loaded.predict(sample)
        table(
            "4. credit@staging predicts three rows",
            ["age", "country", "employment", "prediction", "P(default)"],
            [
                (r.age, r.country, r.employment, p, f"{proba[1]:.3f}")
                for r, p, proba in zip(
                    sample.itertuples(),
                    predictions.values,
                    predictions.probabilities if predictions.probabilities is not None else [],
                    strict=True,
                )
            ],
        )

        bad = [
            {
                "age": 41,
                "income": "abc",
                "debt_ratio": 0.2,
                "months_employed": 12,
                "country": "DE",
                "employment": "salaried",
            },
            {"age": 35, "income": 4100.0, "debt_ratio": 0.4, "months_employed": 30, "employment": "salaried"},
        ]
        console.print("\n5. a request with a string in a numeric column and a missing feature:")
        try:
            loaded.predict(bad)
        except ContractViolationError as exc:
            console.print("[red]rejected[/]:", end=" ")
            console.print(str(exc), markup=False, highlight=False)

        strict = loaded.contract.replace_feature("age", on_out_of_range="reject")
        v3 = reg.edit_contract(v2.ref, strict)
        old = {
            "age": 150,
            "income": 3000.0,
            "debt_ratio": 0.2,
            "months_employed": 12,
            "country": "DE",
            "employment": "retired",
        }
        counted = loaded.validate([old])
        console.print(
            f"\n6. age=150 under {v2.ref}'s contract is allowed and counted: {dict(counted.counts)}"
        )
        console.print(f"   after 'contract edit' made {v3.ref} reject out-of-range ages:")
        try:
            reg.load(v3.ref).predict([old])
        except ContractViolationError as exc:
            console.print(f"   rejected: {exc.violations[0]}", markup=False, highlight=False)
        evaluation_demo(reg, v2.ref, credit)
        store_url = reg.settings.store_url
    _operations_demo(
        credit, [{str(k): v for k, v in r.items()} for r in sample.to_dict("records")], store_url
    )
    console.print(f"\n[green]demo finished in {time.perf_counter() - started:.1f}s[/]")


def _operations_demo(credit: pd.DataFrame, sample: list[dict[str, Any]], store_url: str) -> None:
    """Serve, monitor, roll out, score in batch, secure it all, package it and export it to ONNX
    (steps 8 to 21)."""
    # Imported here, not at the top: they load the registry, rollouts and pandas, which every
    # other command would pay for at start, since the CLI app imports this module.
    from shipyard.cli.demo_batch import batch_demo
    from shipyard.cli.demo_edge import edge_demo
    from shipyard.cli.demo_monitor import monitoring_demo
    from shipyard.cli.demo_package import package_demo
    from shipyard.cli.demo_rollout import rollout_demo
    from shipyard.cli.demo_security import security_demo
    from shipyard.cli.demo_serving import serve_demo

    drifted = make_credit(400, seed=99)
    drifted["income"] = (drifted["income"] * 3).round(2)  # incomes tripled: the world moved
    serve_demo("credit@staging", sample, store_url, drifted=drifted)
    with registry() as reg:
        monitoring_demo(reg, "credit@staging")
        rollout_demo(reg, credit)
        batch_demo(reg, make_credit(5000, seed=7))
        console.rule("[bold]Security: keys and roles over TLS, the audit chain, a signed version")
        security_demo(reg, sample[0])
        package_demo(reg, "credit@production")
        edge_demo(reg, "credit@production", sample[:3])
