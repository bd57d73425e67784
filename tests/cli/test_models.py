"""`shipyard models`: register, list, show, alias, tag, archive, history; registering as a real
process, the rest in process (`shipyard_in_process`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
from tests.commands import shipyard_cli, shipyard_in_process


def test_a_joblib_file_registers_only_with_trust_pickle(
    home: Path, tmp_path: Path, credit: pd.DataFrame, credit_pipeline: Any
) -> None:
    import joblib

    joblib.dump(credit_pipeline, tmp_path / "model.joblib")
    credit.to_parquet(tmp_path / "train.parquet")
    args = ("models", "register", str(tmp_path / "model.joblib"), "--name", "fraud")
    args += ("--train-data", str(tmp_path / "train.parquet"), "--target", "default")
    refused = shipyard_cli(home, *args)
    assert refused.returncode == 1
    assert "--trust-pickle" in refused.stderr
    assert json.loads(shipyard_cli(home, "models", "list", "--json").stdout) == []
    done = shipyard_cli(home, *args, "--trust-pickle")
    assert done.returncode == 0, done.stderr
    assert "registered fraud:1 (sklearn" in done.stdout


def test_register_list_show_alias_tag_archive(home: Path, registered: Path) -> None:
    listed = json.loads(shipyard_in_process(home, "models", "list", "--json").stdout)
    assert [(m["name"], m["latest_version"], m["aliases"]) for m in listed] == [("fraud", 1, {"staging": 1})]
    shown = json.loads(shipyard_in_process(home, "models", "show", "fraud:1", "--json").stdout)
    assert shown["tags"] == {"team": "risk"}
    assert shown["contract"]["target"] == "default"
    assert shipyard_in_process(home, "models", "tag", "fraud:1", "owner=ana").returncode == 0
    assert shipyard_in_process(home, "models", "unalias", "fraud@staging").returncode == 0
    assert shipyard_in_process(home, "models", "archive", "fraud:1").returncode == 0
    model = json.loads(shipyard_in_process(home, "models", "show", "fraud", "--json").stdout)
    assert model["versions"][0]["status"] == "archived"
    assert model["versions"][0]["tags"] == {"owner": "ana", "team": "risk"}
    history = json.loads(shipyard_in_process(home, "models", "history", "fraud", "--json").stdout)
    assert [c["action"] for c in history][:3] == ["archive", "unalias", "tag"]
    table = shipyard_in_process(home, "models", "show", "fraud:1")
    assert "fraud:1" in table.stdout and "country" in table.stdout


def test_not_a_model_file_is_refused(home: Path, tmp_path: Path) -> None:
    (tmp_path / "model.skops").write_bytes(b"garbage")
    done = shipyard_in_process(home, "models", "register", str(tmp_path / "model.skops"), "--name", "x")
    assert done.returncode == 1
    assert "is not a usable sklearn model" in done.stderr


def test_show_gives_the_importance_stored_at_registration(home: Path) -> None:
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    from shipyard import Registry, Settings

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=60), "b": rng.normal(size=60)})
    frame["y"] = (frame["a"] > 0).astype(int)
    model = LogisticRegression().fit(frame[["a", "b"]], frame["y"])
    with Registry(Settings.for_home(home), actor="tester") as reg:
        version = reg.register(model, name="small", train_data=frame, target="y")
        reg.register(model, name="small", contract=version.contract)
    shown = shipyard_in_process(home, "models", "show", "small:1")
    assert shown.returncode == 0, shown.stderr
    text = " ".join(shown.stdout.split())
    summary = version.explanation or {}
    assert f"mean |attribution| on 60 training rows ({summary['method']}, {summary['space']})" in text
    assert "importance at registration (mean |attribution|)" in text
    assert text.index(" a ") < text.index(" b ", text.index("importance at registration"))  # a first
    bare = shipyard_in_process(home, "models", "show", "small:2")
    assert "- (registered without training data)" in " ".join(bare.stdout.split())
    assert (
        json.loads(shipyard_in_process(home, "models", "show", "small:1", "--json").stdout)["importance"]["a"]
        > 0
    )
