"""`shipyard predict`: files in, predictions out, bad rows refused with their reasons."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from tests.commands import shipyard_in_process


def test_predict_files_and_reject_bad_rows(home: Path, registered: Path, credit: pd.DataFrame) -> None:
    rows = credit.drop(columns=["default"]).head(5)
    rows.to_csv(registered / "rows.csv", index=False)
    rows.to_json(registered / "rows.jsonl", orient="records", lines=True)
    out = registered / "preds.parquet"
    done = shipyard_in_process(
        home, "predict", "fraud@staging", "--input", str(registered / "rows.csv"), "--output", str(out)
    )
    assert done.returncode == 0, done.stderr
    written = pd.read_parquet(out)
    assert list(written.columns) == ["row", "model_version", "prediction", "proba_0", "proba_1"]
    assert len(written) == 5
    as_json = json.loads(
        shipyard_in_process(
            home, "predict", "fraud:1", "--input", str(registered / "rows.jsonl"), "--json"
        ).stdout
    )
    assert len(as_json["predictions"]) == 5
    bad = rows.astype({"income": object})
    bad.loc[2, "income"] = "abc"
    bad.drop(columns=["country"]).to_csv(registered / "bad.csv", index=False)
    failed = shipyard_in_process(home, "predict", "fraud:1", "--input", str(registered / "bad.csv"))
    assert failed.returncode == 1
    assert "feature 'income' of row 2 is 'abc': expected a number" in failed.stderr
    assert "missing column(s), expected by the contract: ['country']" in failed.stderr
    assert "Traceback" not in failed.stderr
