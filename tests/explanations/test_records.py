"""The explanation log: records written whole, read back by request id, pii values masked, sealed at rest."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression

from shipyard import Registry, Settings
from shipyard.errors import EncryptionError, InputError, NotFoundError
from shipyard.explanations.explaining import explain_rows
from shipyard.explanations.records import ExplanationLog, ExplanationRecord, masked_explanation
from shipyard.security.encryption import Envelope, MasterKey
from shipyard.security.masking import Masker

NAMES = ["name_id", "salary", "age", "score"]


@pytest.fixture(scope="module")
def record(tmp_path_factory: pytest.TempPathFactory) -> ExplanationRecord:
    """The explanation of two rows of a 4-feature classifier whose `name_id` (hash) and `salary`
    (redact) are pii."""
    with Registry(Settings.for_home(tmp_path_factory.mktemp("records")), actor="tester") as registry:
        return _record(registry)


def _record(sqlite_registry: Registry) -> ExplanationRecord:
    X, y = make_classification(200, 4, n_informative=3, n_redundant=0, random_state=0)
    frame = pd.DataFrame(X, columns=NAMES)
    version = sqlite_registry.register(
        LogisticRegression().fit(frame, y), name="people", train_data=frame.assign(y=y), target="y"
    )
    contract = version.contract.replace_feature("name_id", pii=True)
    contract = contract.replace_feature("salary", pii=True, pii_mask="redact")
    sqlite_registry.edit_contract("people:1", contract)
    loaded = sqlite_registry.load("people:1")
    explanation = explain_rows(loaded, frame.head(2))
    assert explanation.scored.predictions is not None
    return ExplanationRecord(
        request_id="req-1",
        model="people",
        version=1,
        protocol="rest",
        time=1_700_000_000.0,
        predictions=explanation.scored.predictions.values.tolist(),
        probabilities=None,
        explanation=explanation.to_dict(top=4),
    )


def _masks() -> dict[str, str]:
    return {"name_id": "hash", "salary": "redact"}


def test_a_record_is_read_back_with_pii_values_masked(tmp_path: Path, record: ExplanationRecord) -> None:
    log = ExplanationLog(str(tmp_path), masker=Masker(b"k" * 32))
    path = log.write(record, masks=_masks())
    back = log.read("req-1", model="people")
    assert back == log.read("req-1")  # found without the model too
    assert back.predictions == record.predictions
    assert back.explanation["attributions"] == record.explanation["attributions"]
    values = {e["feature"]: e["value"] for e in back.explanation["top_features"][0]}
    raw = {e["feature"]: e["value"] for e in record.explanation["top_features"][0]}
    assert values["name_id"].startswith("hmac:")
    assert values["salary"] is None
    assert values["age"] == raw["age"]
    text = Path(path).read_text()
    assert repr(raw["name_id"])[:8] not in text and repr(raw["salary"])[:8] not in text
    assert [p.name for p in Path(path).parent.iterdir()] == [Path(path).name]  # no temporary left
    assert Path(path).stat().st_mode & 0o777 == 0o600


def test_without_a_masker_pii_values_are_left_out() -> None:
    explanation = {"top_features": [[{"feature": "name_id", "value": "Ana", "attribution": 0.1}]]}
    masked = masked_explanation(explanation, {"name_id": "hash"}, None)
    assert masked["top_features"][0][0]["value"] is None
    assert explanation["top_features"][0][0]["value"] == "Ana"  # the answer itself is untouched


@pytest.mark.parametrize(
    "request_id", ["../../etc/passwd", "a/b", "..", "x" * 128], ids=["up", "slash", "dots", "long"]
)
def test_any_request_id_stays_inside_the_log(
    tmp_path: Path, record: ExplanationRecord, request_id: str
) -> None:
    log = ExplanationLog(str(tmp_path / "store"))
    path = Path(log.write(replace(record, request_id=request_id)))
    assert path.parent == tmp_path / "store" / "explanations" / "people"
    assert log.read(request_id).request_id == request_id


def test_unknown_and_malformed_ids_are_refused(tmp_path: Path, record: ExplanationRecord) -> None:
    log = ExplanationLog(str(tmp_path))
    with pytest.raises(NotFoundError, match="no explanation of request 'nope'"):
        log.read("nope")
    log.write(record)
    with pytest.raises(NotFoundError, match="model 'other'"):
        log.read("req-1", model="other")
    for bad in ("", "x" * 129, "a\nb"):
        with pytest.raises(InputError, match="expected printable text"):
            log.read(bad)


def test_records_are_sealed_at_rest_with_a_cipher(tmp_path: Path, record: ExplanationRecord) -> None:
    cipher = Envelope(MasterKey(b"s" * 32))
    sealed = ExplanationLog(str(tmp_path), cipher=cipher)
    path = Path(sealed.write(record))
    assert b"req-1" not in path.read_bytes()
    assert sealed.read("req-1").explanation == record.explanation
    with pytest.raises(EncryptionError, match="SHIPYARD_ENCRYPTION_KEY"):
        ExplanationLog(str(tmp_path)).read("req-1")
