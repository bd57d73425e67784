"""`shipyard export` and `shipyard models download`: what they print, write, register and refuse."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from tests.commands import shipyard_in_process

from homes import copy_home


@pytest.fixture
def home(edge_home: Path, tmp_path: Path) -> Path:
    """A copy of the edge home (tests/edge_models.py): credit:1, mlp:1, svc:1, rbf:1, spline:1, ..."""
    return copy_home(edge_home, tmp_path / "home")


def test_export_prints_the_parity_report_and_where_it_wrote(home: Path, tmp_path: Path) -> None:
    done = shipyard_in_process(home, "export", "credit:1", "--to", "onnx", "--out", str(tmp_path / "edge"))
    assert done.returncode == 0, done.stderr
    assert "parity of the onnx export of credit:1" in done.stdout
    assert "passed" in done.stdout and "100 reference sample" in done.stdout
    assert f"wrote {tmp_path / 'edge' / 'model.onnx'}" in done.stdout
    assert (tmp_path / "edge" / "parity.json").is_file()


def test_export_with_a_holdout_as_json(home: Path, tmp_path: Path, applications: pd.DataFrame) -> None:
    applications.to_csv(tmp_path / "holdout.csv", index=False)
    done = shipyard_in_process(
        home, "export", "mlp:1", "--data", str(tmp_path / "holdout.csv"), "--target", "default", "--json"
    )
    assert done.returncode == 0, done.stderr
    body = json.loads(done.stdout)
    assert body["parity"]["passed"] is True and body["out"] is None
    assert body["parity"]["metric"]["data"] == "the holdout (300 rows the contract accepts)"
    alone = shipyard_in_process(home, "export", "mlp:1", "--data", str(tmp_path / "holdout.csv"))
    assert alone.returncode == 1 and "--data and --target go together" in alone.stderr


def test_a_registered_export_is_shown_evaluated_and_signed(
    home: Path, tmp_path: Path, applications: pd.DataFrame
) -> None:
    done = shipyard_in_process(home, "export", "credit:1", "--register")
    assert done.returncode == 0, done.stderr
    assert "registered credit:2 (onnx, exported from credit:1)" in done.stdout
    shown = shipyard_in_process(home, "models", "show", "credit:2")
    assert "exported from  credit:1" in shown.stdout
    assert "passed (float64): 122 rows" in shown.stdout
    applications.to_csv(tmp_path / "holdout.csv", index=False)
    evaluated = shipyard_in_process(
        home, "evaluate", "credit:2", "--data", str(tmp_path / "holdout.csv"), "--target", "default"
    )
    assert evaluated.returncode == 0, evaluated.stderr
    key = tmp_path / "signing.pem"
    made = shipyard_in_process(home, "sign", "--new-key", str(key))
    public = made.stdout.split("its public key to ")[1].strip()
    signed = shipyard_in_process(home, "sign", "credit:2", "--key", str(key))
    assert signed.returncode == 0, signed.stderr
    verified = shipyard_in_process(home, "verify", "credit:2", "--trusted-key", public)
    assert verified.returncode == 0, verified.stderr


@pytest.mark.filterwarnings("ignore:.*probability.*:FutureWarning")  # skl2onnx reads SVC.probA_
def test_a_failed_gate_exits_1_with_the_rows_that_differ(home: Path, tmp_path: Path) -> None:
    done = shipyard_in_process(home, "export", "rbf:1", "--out", str(tmp_path / "edge"))
    assert done.returncode == 1
    assert "error: the ONNX export of rbf:1 is refused; nothing was written." in done.stderr
    assert "row 1: version" in done.stderr and "features age=" in done.stderr
    assert not (tmp_path / "edge").exists()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["custom:1"], "custom:1 is a custom Python model (pyfunc flavor)"),
        (["spline:1"], "step 'spline' (SplineTransformer) of the pipeline has no ONNX converter"),
        (["credit:1", "--to", "c"], "--to c writes a header and a source: name the folder with --out DIR"),
        (["credit:1", "--dtype", "float16"], "dtype 'float16' is not one an export computes in"),
    ],
)
def test_bad_input_is_refused_with_what_would_work(home: Path, args: list[str], expected: str) -> None:
    done = shipyard_in_process(home, "export", *args)
    assert done.returncode == 1
    assert expected in done.stderr and "Traceback" not in done.stderr


def test_download_gives_the_artifact_in_its_frameworks_format(home: Path, tmp_path: Path) -> None:
    assert shipyard_in_process(home, "export", "credit:1", "--register").returncode == 0
    for ref, model_file in [("credit:1", "model.skops"), ("credit:2", "model.onnx")]:
        out = tmp_path / ref.replace(":", "-")
        done = shipyard_in_process(home, "models", "download", ref, "--out", str(out))
        assert done.returncode == 0, done.stderr
        assert sorted(p.name for p in out.iterdir()) == sorted([model_file, "contract.json"])
        assert json.loads((out / "contract.json").read_text())["features"][0]["name"] == "age"
    again = shipyard_in_process(home, "models", "download", "credit:1", "--out", str(tmp_path / "credit-1"))
    assert again.returncode == 1 and "not an empty folder" in again.stderr
