"""`shipyard demo`: everything built so far, on bundled and synthetic data, in under a minute."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import numpy as np
import typer

from shipyard.cli.evaluate import show_evaluation, show_gates
from shipyard.cli.models import show_version
from shipyard.cli.render import console, table
from shipyard.cli.session import registry
from shipyard.core.refs import ModelRef
from shipyard.errors import ContractViolationError, GateError

if TYPE_CHECKING:
    import pandas as pd

    from shipyard.registry import Registry

__all__ = ["credit_data", "credit_model", "demo"]

COUNTRIES = ("DE", "FR", "ES", "IT", "NL")
EMPLOYMENT = ("salaried", "self-employed", "unemployed", "retired")


def credit_data(n: int = 5000, *, seed: int = 0) -> pd.DataFrame:
    """A synthetic credit data set: numeric and categorical features, some missing incomes."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    age = rng.integers(18, 80, n)
    income = np.round(rng.lognormal(8.2, 0.5, n), 2)
    income[rng.random(n) < 0.03] = np.nan
    debt_ratio = np.round(rng.beta(2, 5, n), 3)
    months_employed = rng.integers(0, 480, n)
    country = rng.choice(COUNTRIES, n)
    employment = rng.choice(EMPLOYMENT, n, p=[0.6, 0.2, 0.1, 0.1])
    logit = (
        -1.0
        + 3.5 * debt_ratio
        - 0.00025 * np.nan_to_num(income, nan=3000.0)
        - 0.004 * months_employed
        + 1.2 * (employment == "unemployed")
        + 0.3 * (country == "ES")
        + 0.01 * (age < 25) * 30
    )
    default = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    return pd.DataFrame(
        {
            "age": age,
            "income": income,
            "debt_ratio": debt_ratio,
            "months_employed": months_employed,
            "country": country,
            "employment": employment,
            "default": default,
        }
    )


def credit_model(frame: pd.DataFrame) -> Any:
    """A gradient-boosting pipeline that encodes the categorical columns itself."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OrdinalEncoder

    categorical = ["country", "employment"]
    numeric = ["age", "income", "debt_ratio", "months_employed"]
    encode = ColumnTransformer(
        [
            (
                "categories",
                OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=np.nan),
                categorical,
            ),
            ("numbers", "passthrough", numeric),
        ]
    )
    model = Pipeline(
        [
            ("encode", encode),
            (
                "boost",
                HistGradientBoostingClassifier(max_iter=100, categorical_features=[0, 1], random_state=0),
            ),
        ]
    )
    return model.fit(frame.drop(columns=["default"]), frame["default"])


def demo(
    rows: Annotated[int, typer.Option(help="Rows of synthetic credit data.")] = 5000,
) -> None:
    """Register, validate, evaluate, gate, serve, monitor, roll out, score in batch, secure: everything."""
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

        credit = credit_data(rows)
        model = credit_model(credit)
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
    """Serve, monitor, roll out, score in batch, and secure it all (steps 8 to 18)."""
    from shipyard.cli.demo_batch import batch_demo
    from shipyard.cli.demo_rollout import rollout_demo  # it imports this module's helpers
    from shipyard.cli.demo_security import security_demo

    drifted = credit_data(400, seed=99)
    drifted["income"] = (drifted["income"] * 3).round(2)  # incomes tripled: the world moved
    serve_demo("credit@staging", sample, store_url, drifted=drifted)
    with registry() as reg:
        monitoring_demo(reg, "credit@staging")
        rollout_demo(reg, credit)
        batch_demo(reg, credit_data(5000, seed=7))
        console.rule("[bold]Security: keys and roles over TLS, the audit chain, a signed version")
        security_demo(reg, sample[0])


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
    holdout = credit_data(2000, seed=99)
    weak = reg.register(
        credit_model(credit.head(300)),
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


def serve_demo(
    ref: str, rows: list[dict[str, Any]], store_url: str, *, drifted: pd.DataFrame | None = None
) -> None:
    """Start `shipyard serve`, call it over all three protocols, show a rejection and the metrics."""
    import signal

    import httpx

    from shipyard.serving.client import Client

    grpc_port = free_port()
    server, url = start_server([ref, "--grpc-port", str(grpc_port)])
    console.print(
        f"\n8. [bold]shipyard serve {ref} --port {url.rsplit(':', 1)[1]} --grpc-port {grpc_port}[/]"
    )
    name = ref.split("@", 1)[0]
    try:
        with httpx.Client(base_url=url, timeout=30) as http:
            with Client(url) as client:
                ours = client.predict(name, rows[:1])
            with Client(f"grpc://127.0.0.1:{grpc_port}") as client:
                oip_grpc = client.predict(name, rows[:1])
            mlflow = http.post(
                "/invocations",
                json={"dataframe_split": {"columns": list(rows[0]), "data": [list(rows[0].values())]}},
            ).json()
            oip_rest = http.post(
                f"/v2/models/{name}/infer",
                json={
                    "inputs": [
                        {
                            "name": k,
                            "datatype": "BYTES" if isinstance(v, str) else "FP64",
                            "shape": [1],
                            "data": [v],
                        }
                        for k, v in rows[0].items()
                    ]
                },
            ).json()
            table(
                "   one row, four clients",
                ["protocol", "answer"],
                [
                    (
                        "REST /v1 (shipyard.Client)",
                        f"{ours.predictions} P={_rounded(ours.probabilities)} version {ours.version}",
                    ),
                    ("MLflow /invocations", str(mlflow)),
                    (
                        "OIP REST /v2 infer",
                        str([[round(x, 3) for x in o["data"]] for o in oip_rest["outputs"]]),
                    ),
                    ("OIP gRPC ModelInfer", f"{oip_grpc.predictions} P={_rounded(oip_grpc.probabilities)}"),
                ],
            )
            bad = http.post(f"/v1/models/{name}/predict", json={"instances": [{**rows[0], "age": "forty"}]})
            console.print(f"   a bad request gets {bad.status_code}:", end=" ")
            console.print(
                json.dumps(bad.json()["error"]["violations"]), markup=False, highlight=False, soft_wrap=True
            )
            if drifted is not None:
                _send_drifted(http, name, drifted)
            metrics = http.get("/metrics").text
            shown = [
                line
                for line in metrics.splitlines()
                if line.startswith(("shipyard_requests_total", "shipyard_drift_share"))
                or (line.startswith("shipyard_drift_psi") and 'feature="income"' in line)
            ]
            console.print("   /metrics:", markup=False)
            for line in shown:
                console.print(f"     {line}", markup=False, highlight=False, soft_wrap=True)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(30)
    segments = list(Path(store_url, "events", name).rglob("*.parquet")) if "://" not in store_url else []
    console.print(f"   stopped with SIGTERM; the prediction log holds {len(segments)} Parquet segment(s)")


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(args: list[str], *, ca: Path | None = None) -> tuple[subprocess.Popen[bytes], str]:
    """Start `shipyard serve ARGS` on a free port and wait until it is ready; returns it and its URL.

    With `ca` the server speaks HTTPS (ARGS give --tls-cert/--tls-key) and `ca` verifies it.
    """
    import ssl

    import httpx

    port = free_port()
    command = [sys.executable, "-m", "shipyard", "serve", *args, "--port", str(port)]
    server = subprocess.Popen(command, env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"{'https' if ca else 'http'}://127.0.0.1:{port}"
    verify: Any = ssl.create_default_context(cafile=str(ca)) if ca else True
    deadline = time.monotonic() + 60
    with httpx.Client(base_url=url, timeout=30, verify=verify) as http:
        while time.monotonic() < deadline and server.poll() is None:
            try:
                if http.get("/readyz").status_code == 200:
                    return server, url
            except httpx.TransportError:
                pass
            time.sleep(0.1)
    if server.poll() is None:
        server.kill()
    output = server.stdout.read().decode(errors="replace") if server.stdout else ""
    raise RuntimeError(f"the demo server did not become ready: {output}")


def _send_drifted(http: Any, name: str, drifted: pd.DataFrame) -> None:
    """Send rows whose incomes tripled, post their labels later, and show the live drift."""
    features = drifted.drop(columns=["default"])
    ids = []
    for start in range(0, len(features), 10):
        rows = [
            {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in r.items()}
            for r in features.iloc[start : start + 10].to_dict("records")
        ]
        ids.append(http.post(f"/v1/models/{name}/predict", json={"instances": rows}).json()["request_id"])
    labels = drifted["default"].tolist()
    feedback = [{"request_id": rid, "labels": labels[i * 10 : i * 10 + 10]} for i, rid in enumerate(ids)]
    accepted = http.post("/v1/feedback", json=feedback).json()["accepted"]
    console.print(
        f"   sent {len(features)} rows with incomes tripled; POST /v1/feedback stored {accepted} labels"
    )
    deadline = time.monotonic() + 15
    live: dict[str, Any] = {}
    while time.monotonic() < deadline:
        live = http.get(f"/v1/models/{name}/drift").json().get("drift") or {}
        if live.get("current_rows", 0) >= len(features):
            break
        time.sleep(0.5)
    if live:
        console.print(
            f"   live drift over the last 15 minutes: {live['drifted_features']} drifted "
            f"(share {live['share']:.0%})"
        )


def monitoring_demo(reg: Registry, ref: str) -> None:
    """Report on the logged traffic and run one check of `monitor watch`, which raises an alert."""
    from datetime import timedelta

    from shipyard.cli.monitor import show_report
    from shipyard.monitoring.alerts import DEFAULT_RULES, Rule
    from shipyard.monitoring.monitor import monitor_report
    from shipyard.monitoring.report import write_report
    from shipyard.monitoring.watch import Watcher

    console.print(f"\n9. [bold]shipyard monitor report {ref} --window 1h --html monitor.html[/]")
    report = monitor_report(reg, ref, window=timedelta(hours=1), buckets=12)
    show_report(report.to_dict())
    path = write_report(report.to_dict(), reg.settings.home / "monitor.html")
    console.print(f"   wrote {path} (self-contained HTML)")
    console.print(f"\n10. [bold]shipyard monitor watch {ref} --every 5m --window 1h[/] (one check)")
    watcher = Watcher(reg, ref, window=timedelta(hours=1), rules=[Rule.parse(r) for r in DEFAULT_RULES])
    check = watcher.check()
    for alert in check.opened:
        console.print(f"   [red]ALERT[/] {alert.rule}: {alert.detail.get('message', '')}", highlight=False)
    again = watcher.check()
    console.print(
        f"   checked again: {len(again.firings)} condition(s) still hold, {len(again.opened)} new alert(s) "
        "(de-duplicated while they last)"
    )


def _rounded(probabilities: list[dict[str, float]] | None) -> str:
    return str([{k: round(v, 3) for k, v in row.items()} for row in probabilities or []])
