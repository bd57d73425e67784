"""An exported version is a version like any other: served beside its source by one real
`shipyard serve` of a deployment (our REST, the OIP v2 over REST and gRPC), canaried against it
and promoted by the server's own rollout controller, and gated on a holdout.

The model is the demo's credit pipeline (an OrdinalEncoder of text columns before histogram
boosting); `country` is made nullable before the export, so a missing text value reaches both.
Evaluation and signing of an export are covered in tests/cli/test_export.py.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tritonclient.grpc as triton_grpc
import tritonclient.http as triton_http
from tests.commands import shipyard_in_process

from servers import CREDIT_DATATYPES, ServerProcess, credit_row
from shipyard import Policy, Registry, Settings, check_gates, export
from shipyard.datasets import fit_credit_model, make_credit

SOURCE, EXPORT = 2, 3  # credit:1 with `country` made nullable is credit:2
# Rows every protocol can carry: a missing income and an unseen country and employment among them.
ROWS = [
    credit_row(),
    credit_row(age=25, employment="unemployed", debt_ratio=0.8, country="ES"),
    credit_row(income=None),
    credit_row(country="XX", employment="astronaut", months_employed=0),
    credit_row(age=79, income=617.45, debt_ratio=0.008, country="NL", employment="retired"),
]
# A missing text value: JSON carries it as null; an OIP BYTES tensor over gRPC has no null.
MISSING_TEXT = [credit_row(country=None), credit_row(country=None, income=None)]


def _cli(home: Path, *args: str) -> str:
    done = shipyard_in_process(home, *args)
    assert done.returncode == 0, done.stderr
    return done.stdout


@dataclass
class Served:
    home: Path
    server: ServerProcess

    def cli(self, *args: str) -> str:
        return _cli(self.home, *args)

    def deployment(self) -> dict[str, Any]:
        return json.loads(self.cli("deploy", "show", "api", "--json"))  # type: ignore[no-any-return]

    def rollout(self) -> dict[str, Any]:
        return json.loads(self.cli("rollout", "status", "api", "--json"))["rollout"]  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """credit:2 (the demo's pipeline) and credit:3 (its ONNX export) as the stable and canary arms
    of deployment `api`, the canary paused at 50%, served by one `shipyard serve --deployment api`."""
    home = tmp_path_factory.mktemp("exported") / "home"
    data = make_credit(600, seed=1)
    with Registry(Settings.for_home(home), actor="tester") as reg:
        reg.register(fit_credit_model(data), name="credit", train_data=data, target="default")
        contract = reg.get("credit:1").contract
        reg.edit_contract("credit:1", contract.replace_feature("country", nullable=True, on_missing="pass"))
        assert export(f"credit:{SOURCE}", register=True, registry=reg).registered == f"credit:{EXPORT}"
        reg.set_alias(f"credit:{SOURCE}", "staging")
    rules = home / "rules.yaml"
    # Small windows for a short test; latency is left loose, since both arms share a busy 2-core box.
    # the arms answer alike on equal rows; sticky routing gives them different rows, whose
    # predictions differ by chance: this test is about the export, not the drift rule
    rules.write_text(
        "min_requests: 30\nmax_latency_ratio_p95: 5\nmax_latency_ratio_p99: 10\nmax_prediction_psi: 5\n"
    )
    _cli(home, "deploy", "create", "api", "--model", "credit@staging")
    _cli(
        home, "rollout", "start", "api", "--to", f"credit:{EXPORT}", "--steps", "50,100",
        "--interval", "1s", "--rules", str(rules),
    )  # fmt: skip
    _cli(home, "rollout", "pause", "api", "--reason", "comparing the arms first")
    server = ServerProcess(home, [], "--deployment", "api", "--follow-interval", "0.2")
    try:
        server.wait_ready()
        yield Served(home, server)
    finally:
        server.terminate()


def _ours_by_arm(served: Served, rows: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """Our REST API's answer to `rows` from each arm: routing keys are tried until both answered."""
    answers: dict[int, dict[str, Any]] = {}
    for k in range(64):
        reply = served.server.http.post(
            "/v1/models/api/predict", json={"instances": rows}, headers={"X-Shipyard-Key": f"user-{k}"}
        )
        assert reply.status_code == 200, reply.text
        answers.setdefault(reply.json()["version"], reply.json())
        if len(answers) == 2:
            return answers
    raise AssertionError(f"64 routing keys landed on versions {sorted(answers)} only")


def _same(labels: list[Any], probabilities: Any, theirs_labels: list[Any], theirs: Any) -> None:
    assert labels == theirs_labels
    np.testing.assert_allclose(np.asarray(probabilities), np.asarray(theirs), rtol=0, atol=1e-6)


def test_our_rest_api_answers_with_the_sources_labels_and_probabilities(served: Served) -> None:
    answers = _ours_by_arm(served, ROWS + MISSING_TEXT)
    source, exported = answers[SOURCE], answers[EXPORT]
    assert exported["model"] == "api"
    _same(
        exported["predictions"],
        [[p["0"], p["1"]] for p in exported["probabilities"]],
        source["predictions"],
        [[p["0"], p["1"]] for p in source["probabilities"]],
    )


_NUMPY = {"INT64": np.int64, "FP64": np.float64}


def _oip_inputs(module: Any, rows: list[dict[str, Any]]) -> list[Any]:
    inputs = []
    for name, datatype in CREDIT_DATATYPES.items():
        values = [r[name] for r in rows]
        if datatype == "BYTES":
            array = np.asarray([v.encode() for v in values], dtype=object)
        else:
            array = np.asarray([np.nan if v is None else v for v in values], dtype=_NUMPY[datatype])
        tensor = module.InferInput(name, [len(rows)], datatype)
        tensor.set_data_from_numpy(array)
        inputs.append(tensor)
    return inputs


def test_oip_rest_and_grpc_answer_each_version_alike(served: Served) -> None:
    rest = triton_http.InferenceServerClient(f"127.0.0.1:{served.server.port}")
    grpc = triton_grpc.InferenceServerClient(served.server.grpc_target)
    try:
        results = {
            (protocol, version): client.infer("api", _oip_inputs(module, ROWS), model_version=str(version))
            for protocol, client, module in [("rest", rest, triton_http), ("grpc", grpc, triton_grpc)]
            for version in (SOURCE, EXPORT)
        }
        meta = rest.get_model_metadata("api", str(EXPORT))
    finally:
        rest.close()
        grpc.close()
    assert {i["name"]: i["datatype"] for i in meta["inputs"]} == CREDIT_DATATYPES
    source = results["rest", SOURCE]
    for found in results.values():
        _same(
            found.as_numpy("prediction").tolist(),
            found.as_numpy("probabilities"),
            source.as_numpy("prediction").tolist(),
            source.as_numpy("probabilities"),
        )
    assert source.as_numpy("probabilities").shape == (len(ROWS), 2)


def test_oip_json_carries_a_missing_text_value_to_the_export(served: Served) -> None:
    body = {
        "inputs": [
            {"name": n, "datatype": d, "shape": [len(MISSING_TEXT)], "data": [r[n] for r in MISSING_TEXT]}
            for n, d in CREDIT_DATATYPES.items()
            if n != "income"
        ]
        + [{"name": "income", "datatype": "FP64", "shape": [2], "data": [5200.0, 3638.19]}]
    }
    outputs = {}
    for version in (SOURCE, EXPORT):
        reply = served.server.http.post(f"/v2/models/api/versions/{version}/infer", json=body)
        assert reply.status_code == 200, reply.text
        outputs[version] = {o["name"]: o["data"] for o in reply.json()["outputs"]}
    _same(
        outputs[EXPORT]["prediction"],
        outputs[EXPORT]["probabilities"],
        outputs[SOURCE]["prediction"],
        outputs[SOURCE]["probabilities"],
    )


def test_the_export_is_explained_model_agnostically_with_its_answers(served: Served) -> None:
    rows = ROWS + MISSING_TEXT
    body = {
        "inputs": [
            {"name": n, "datatype": d, "shape": [len(rows)], "data": [r[n] for r in rows]}
            for n, d in CREDIT_DATATYPES.items()
            if n != "income"
        ]
        + [{"name": "income", "datatype": "FP64", "shape": [len(rows)], "data": [5200.0] * len(rows)}]
    }
    reply = served.server.http.post(f"/v2/models/api/versions/{EXPORT}/explain", json=body)
    assert reply.status_code == 200, reply.text
    answer = reply.json()
    assert answer["parameters"]["method"] == "exact"  # an ONNX graph has no tree or linear closed form
    outputs = {o["name"]: o for o in answer["outputs"]}
    assert outputs["attributions"]["shape"] == [len(rows), len(CREDIT_DATATYPES), 2]
    predicted = served.server.http.post(f"/v2/models/api/versions/{EXPORT}/infer", json=body).json()
    assert outputs["prediction"]["data"] == predicted["outputs"][0]["data"]


def test_the_export_passes_a_gate_against_its_source_as_champion(served: Served) -> None:
    holdout = make_credit(300, seed=7)
    with Registry(Settings.for_home(served.home), actor="tester") as reg:
        reg.set_alias(f"credit:{SOURCE}", "production", force=True, reason="the source is the champion")
        policy = Policy.parse("rules:\n  - roc_auc >= 0.6\n  - roc_auc >= champion - 0.000001\n")
        result = check_gates(
            f"credit:{EXPORT}", policy, data=holdout, target="default", robust=False, resamples=0,
            explain=False, registry=reg,
        )  # fmt: skip
    assert result.passed, [r.to_dict() for r in result.failed]
    assert result.champion == f"credit:{SOURCE}"
    champion = result.evaluation.champion
    assert champion is not None
    assert result.evaluation.metrics["roc_auc"] == pytest.approx(champion.metrics["roc_auc"], abs=1e-9)


def test_a_canary_of_the_export_lands_traffic_on_both_arms_and_promotes_it(served: Served) -> None:
    """Run last: the promotion leaves the export as the only arm."""
    # Distinct rows of one population: each arm's share of them must look alike to the analysis.
    frame = make_credit(400, seed=7).drop(columns="default").astype(object)
    rows = frame.where(frame.notna(), None).to_dict("records")
    served.cli("rollout", "resume", "api")
    seen: set[int] = set()
    deadline = time.monotonic() + 45
    i = 0
    while time.monotonic() < deadline:
        reply = served.server.http.post("/v1/models/api/predict", json={"instances": [rows[i % len(rows)]]})
        assert reply.status_code == 200, reply.text
        seen.add(reply.json()["version"])
        i += 1
        if i % 20 == 0 and served.rollout()["state"] != "progressing":
            break
    rollout = served.rollout()
    assert rollout["state"] == "promoted", (rollout, served.server.output()[-3000:])
    assert seen == {SOURCE, EXPORT}
    history = json.loads(served.cli("rollout", "history", "api", "--json"))
    assert [e["kind"] for e in history if e["kind"] != "wait"] == [
        "start",
        "step",
        "pause",
        "resume",
        "promoted",
    ]
    verdict = history[-1]["detail"]
    assert verdict["verdict"] == "pass" and min(verdict["stable_requests"], verdict["new_requests"]) >= 30
    arms = served.deployment()["arms"]
    assert (arms[0]["version"], arms[0]["role"]) == (EXPORT, "stable")
    with Registry(Settings.for_home(served.home)) as reg:
        assert reg.get("credit@staging").version == EXPORT
