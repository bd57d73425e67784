"""Step 8 of `shipyard demo`: serve a version, call it over every protocol, show drift and metrics."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from shipyard.cli.demo_server import free_port, start_server
from shipyard.cli.render import console, table

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["serve_demo"]


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
            with Client(url) as client:
                _explain_one(client, name, rows[0])
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


def _explain_one(client: Any, name: str, row: dict[str, Any]) -> None:
    """Explain one served request and show its top features, then read it back by request id."""
    served = client.explain(name, [row], top=4)
    e = served.explanation
    gap = max(e["additivity_error"])
    console.print(
        f"   why? POST /v1/models/{name}/explain: {e['method']}, in the {e['space']} of class "
        f"{e['outputs'][-1]}: base {e['base_values'][0][-1]:+.3f} + attributions = "
        f"{e['output_values'][0][-1]:+.3f} (additivity error {gap:.1e})"
    )
    table(
        "   the row's top features",
        ["feature", "value", "attribution"],
        [(t["feature"], str(t["value"]), f"{t['attribution']:+.3f}") for t in e["top_features"][0]],
    )
    kept = client.explanation(name, served.request_id)
    console.print(
        f"   read back: GET /v1/models/{name}/explanations/{served.request_id} -> "
        f"{len(kept['explanation']['features'])} attributions"
    )


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


def _rounded(probabilities: list[dict[str, float]] | None) -> str:
    return str([{k: round(v, 3) for k, v in row.items()} for row in probabilities or []])
