"""pii features are never written in clear: not in errors, rejects, the prediction log or profiles."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
import pytest

from shipyard import Batch, Registry
from shipyard.batch.run import BatchOptions, start_job
from shipyard.errors import ContractViolationError
from shipyard.monitoring.events import EventBatch, EventLog
from shipyard.security.masking import Masker


@pytest.fixture
def pii_registry(sqlite_registry: Registry, credit: pd.DataFrame, credit_pipeline: Any) -> Registry:
    """credit:1, then credit:2 with `country` pii (hashed in the log) and `income` pii (redacted)."""
    v1 = sqlite_registry.register(credit_pipeline, name="credit", train_data=credit, target="default")
    contract = v1.contract.replace_feature("country", pii=True, on_unseen_category="reject")
    contract = contract.replace_feature("income", pii=True, pii_mask="redact")
    sqlite_registry.edit_contract("credit:1", contract)
    return sqlite_registry


def test_errors_show_pii_as_a_placeholder_never_the_value(
    pii_registry: Registry, credit: pd.DataFrame
) -> None:
    loaded = pii_registry.load("credit:2")
    row = credit.drop(columns="default").head(1).assign(country="Atlantis-Ana-Lima", income="lots")
    with pytest.raises(ContractViolationError) as caught:
        loaded.predict(row)
    text = str(caught.value) + str([v.to_dict() for v in caught.value.violations])
    assert "Atlantis-Ana-Lima" not in text and "lots" not in text
    assert "<pii>" in text
    assert "not shown: pii" in text  # the contract's categories are not listed either


def test_profiles_leave_pii_features_out(pii_registry: Registry) -> None:
    assert "country" in (pii_registry.get("credit:1").profile or {}).features  # type: ignore[union-attr]
    profile = pii_registry.get("credit:2").profile
    assert profile is not None and "country" not in profile.features and "income" not in profile.features


def test_the_prediction_log_hashes_or_redacts_pii(
    pii_registry: Registry, credit: pd.DataFrame, tmp_path: Path
) -> None:
    loaded = pii_registry.load("credit:2")
    rows = credit.drop(columns="default").head(4)
    batch = loaded.contract.validate(Batch.from_pandas(rows)).batch
    masker = Masker.for_home(tmp_path / "home")
    log = EventLog(str(tmp_path / "store"), masker=masker)
    event = EventBatch(
        time=time.time(), model="credit", version=2, request_ids=["r1"], rows=[4], protocols=["rest"],
        latencies_ms=[1.0], statuses=["ok"], errors=[None], features=batch,
        predictions=loaded.predict_valid(batch), masked=loaded.contract.pii_masks,
    )  # fmt: skip
    log.append(event)
    [segment] = log.flush()
    features = pq.read_table(segment).column("features").to_pylist()
    countries = [f["country"] for f in features]
    assert all(c.startswith("hmac:") for c in countries)
    assert (countries[0] == countries[1]) == (
        rows["country"].iloc[0] == rows["country"].iloc[1]
    )  # joins work
    assert [f["income"] for f in features] == [None] * 4
    assert features[0]["age"] == rows["age"].iloc[0]  # other features as they were
    again = Masker.for_home(tmp_path / "home")  # the home's key is kept: the same hashes later
    assert again.value(rows["country"].iloc[0]) == countries[0]


def test_batch_rejects_keep_pii_out(pii_registry: Registry, credit: pd.DataFrame, tmp_path: Path) -> None:
    frame = credit.drop(columns="default").head(50).copy()
    frame.loc[3, "country"] = "Atlantis-Ana-Lima"
    source = tmp_path / "in.parquet"
    frame.to_parquet(source)
    start_job(pii_registry, "credit:2", str(source), str(tmp_path / "out"), BatchOptions(max_reject_share=1))
    rejects = pq.read_table(next((tmp_path / "out" / "rejects").glob("*.parquet"))).to_pylist()
    assert [r["row"] for r in rejects] == [3]
    assert rejects[0]["country"] == "<pii>" and rejects[0]["income"] == "<pii>"
    assert "Atlantis" not in rejects[0]["reason"]


def test_pii_mask_is_checked(pii_registry: Registry) -> None:
    from shipyard.errors import ContractError

    contract = pii_registry.get("credit:2").contract
    with pytest.raises(ContractError, match="pii_mask='scramble'"):
        contract.replace_feature("age", pii=True, pii_mask="scramble")
    assert replace(contract.features[0]).to_dict().get("pii_mask") is None  # only written for pii features


def test_evaluation_groups_pii_features_by_keyed_hashes_in_results_and_reports(
    pii_registry: Registry, credit: pd.DataFrame, tmp_path: Path
) -> None:
    import json

    from shipyard.evaluation.evaluate import evaluate
    from shipyard.evaluation.report import write_report

    countries = set(credit["country"])
    holdout = credit.sample(400, random_state=3)
    result = evaluate(
        "credit:2", holdout, target="default", sensitive=["country"], slices=["country", "age:3"],
        resamples=0, robust=False, champion=None, store=False, registry=pii_registry,
    )  # fmt: skip
    groups = [g["value"] for g in result.slices["country"]["groups"]]
    assert groups and all(str(g).startswith("hmac:") for g in groups)
    assert len(result.fairness["country"]["groups"]) == len(countries)  # still one group per value
    written = json.dumps(result.to_dict())
    assert not any(f'"{c}"' in written for c in countries)
    write_report(tmp_path / "report.html", result)
    html = (tmp_path / "report.html").read_text()
    assert not any(f">{c}<" in html for c in countries)
    assert len(result.slices["age:3"]["groups"]) == 3  # numeric bins of other features as before
