"""MLflow's scoring protocol at /invocations, driven by MLflow's own scoring client."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from servers import ServerProcess, credit_row

ROWS = [credit_row(), credit_row(age=22, employment="unemployed", debt_ratio=0.9, country="ES")]


@pytest.fixture(scope="module")
def expected(credit_server: ServerProcess) -> list[Any]:
    predictions: list[Any] = credit_server.http.post(
        "/v1/models/credit/predict", json={"instances": ROWS}
    ).json()["predictions"]
    return predictions


def test_mlflow_client_scores_a_dataframe(credit_server: ServerProcess, expected: list[Any]) -> None:
    from mlflow.pyfunc.scoring_server.client import ScoringServerClient

    client = ScoringServerClient("127.0.0.1", credit_server.port)
    client.ping()
    result = client.invoke(pd.DataFrame(ROWS))
    assert list(result.get_predictions(predictions_format="ndarray")) == expected


@pytest.mark.parametrize(
    "body",
    [
        {"dataframe_split": {"columns": list(ROWS[0]), "data": [list(r.values()) for r in ROWS]}},
        {"dataframe_records": ROWS},
        {"instances": ROWS},
        {"inputs": {k: [r[k] for r in ROWS] for k in ROWS[0]}},
    ],
    ids=["dataframe_split", "dataframe_records", "instances", "inputs"],
)
def test_every_mlflow_json_format(credit_server: ServerProcess, expected: list[Any], body: Any) -> None:
    response = credit_server.http.post("/invocations", json=body)
    assert response.status_code == 200
    assert response.json() == {"predictions": expected}


def test_csv_body(credit_server: ServerProcess, expected: list[Any]) -> None:
    csv = pd.DataFrame(ROWS).to_csv(index=False)
    response = credit_server.http.post("/invocations", content=csv, headers={"content-type": "text/csv"})
    assert response.json() == {"predictions": expected}


def test_errors_use_mlflows_shape(credit_server: ServerProcess) -> None:
    response = credit_server.http.post("/invocations", json={"dataframe_records": [credit_row(age="x")]})
    assert response.status_code == 422
    assert response.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert "feature 'age' of row 0" in response.json()["message"]
    response = credit_server.http.post("/invocations", json={"records": []})
    assert response.status_code == 400
    assert response.json()["error_code"] == "BAD_REQUEST"
    assert "dataframe_split" in response.json()["message"]
