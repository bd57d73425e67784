"""`shipyard explain`: rows of a file explained locally; `explain show` reads what a server answered.

A small classifier stands in for the credit model here: registering the credit model computes its
global importance, which takes tens of seconds with the stand-in engines, and these tests are about
the command, not the engines (the serving tests explain the credit model).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from tests.commands import shipyard_in_process

from servers import ServerProcess
from shipyard import Registry, Settings

NAMES = ["age", "income", "debt", "tenure"]


@pytest.fixture(scope="module")
def scored(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home with `risk:1` (alias staging), and `rows.csv` of two rows beside it; the folder."""
    folder = tmp_path_factory.mktemp("explain-cli")
    X, y = make_classification(200, 4, n_informative=3, n_redundant=0, random_state=0)
    frame = pd.DataFrame(X, columns=NAMES)
    with Registry(Settings.for_home(folder / "home"), actor="tester") as registry:
        model = LogisticRegression().fit(frame, y)
        registry.register(model, name="risk", train_data=frame.assign(y=y), target="y", alias="staging")
    frame.head(2).to_csv(folder / "rows.csv", index=False)
    return folder


def test_explain_a_file_as_tables_and_as_json(scored: Path) -> None:
    home, rows = scored / "home", str(scored / "rows.csv")
    shown = shipyard_in_process(home, "explain", "risk@staging", "--input", rows, "--top", "2")
    assert shown.returncode == 0, shown.stderr
    assert "row 0: predicted" in shown.stdout and "row 1: predicted" in shown.stdout
    assert "attribution" in shown.stdout
    done = shipyard_in_process(home, "explain", "rows", "risk:1", "-i", rows, "--output", "1", "--json")
    assert done.returncode == 0, done.stderr
    body = json.loads(done.stdout)
    assert (body["model"], body["version"], len(body["predictions"])) == ("risk", 1, 2)
    assert body["explanation"]["outputs"] == ["1"]
    assert len(body["explanation"]["top_features"][0]) == 4
    refused = shipyard_in_process(home, "explain", "risk:1", "-i", rows, "--method", "shapley")
    assert refused.returncode == 1
    assert "expected one of" in refused.stderr and "Traceback" not in refused.stderr


def test_explain_show_reads_what_the_server_answered(scored: Path) -> None:
    home = scored / "home"
    server = ServerProcess(home, ["risk@staging"]).wait_ready()
    try:
        row = dict(zip(NAMES, [0.1, -0.2, 0.3, 1.0], strict=True))
        answered = server.http.post(
            "/v1/models/risk/explain", json={"instances": [row]}, headers={"x-request-id": "cli-1"}
        )
        assert answered.status_code == 200, answered.text
    finally:
        server.terminate()
    shown = shipyard_in_process(home, "explain", "show", "cli-1", "--model", "risk", "--json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["explanation"] == answered.json()["explanation"]
    table = shipyard_in_process(home, "explain", "show", "cli-1")
    assert table.returncode == 0, table.stderr
    assert "risk:1, request cli-1 (rest)" in table.stdout
    missing = shipyard_in_process(home, "explain", "show", "nope")
    assert missing.returncode == 1 and "no explanation of request 'nope'" in missing.stderr
