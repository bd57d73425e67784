from __future__ import annotations

import numpy as np
import pytest
import yaml

from shipyard import Batch, Contract, ContractError, ContractViolationError, DType, Feature


def test_defaults_reject_missing_where_training_had_none_and_allow_out_of_range(
    contract: Contract,
) -> None:
    age = contract.feature("age")
    assert (age.on_missing, age.on_out_of_range, age.on_unseen_category) == ("reject", "allow", "allow")


def test_valid_rows_pass_and_come_back_in_contract_order(contract: Contract) -> None:
    rows = [{"vip": True, "country": "DE", "income": 10.0, "age": 33}]
    result = contract.validate(Batch.from_records(rows))
    assert result.ok
    assert result.batch.names == ("age", "income", "country", "vip")
    assert result.batch.columns["age"].dtype == np.int64


def test_every_violation_is_reported_with_row_feature_value_and_reason(contract: Contract) -> None:
    rows = [
        {"age": "abc", "income": 1000.0, "country": "DE", "vip": True},
        {"age": 30, "income": "x", "country": 7, "vip": "maybe"},
        {"income": 1000.0, "country": "DE", "vip": True},
    ]
    result = contract.validate(Batch.from_records(rows))
    found = {(v.row, v.feature) for v in result.violations}
    assert found == {(0, "age"), (1, "income"), (1, "country"), (1, "vip"), (2, "age")}
    first = result.violations[0]
    assert (first.row, first.feature, first.value) == (0, "age", "abc")
    assert "expected an integer" in first.reason
    assert result.rejected_rows.tolist() == [0, 1, 2]


def test_missing_column_is_named_and_rejects_every_row(contract: Contract) -> None:
    result = contract.validate(Batch.from_records([{"age": 1, "income": 1000.0, "vip": True}]))
    assert [(v.row, v.feature) for v in result.violations] == [(None, "country")]
    assert "column is missing" in result.violations[0].reason
    with pytest.raises(ContractViolationError, match="'country'"):
        result.raise_if_invalid("fraud:3")


def test_unknown_extra_columns_are_reported_not_rejected(contract: Contract) -> None:
    result = contract.validate(
        Batch.from_records([{"age": 1, "income": 1000.0, "country": "DE", "vip": True, "surprise": 1}])
    )
    assert result.ok
    assert result.extra_columns == ("surprise",)


def test_out_of_range_is_counted_by_default_and_rejected_when_the_contract_says(
    contract: Contract,
) -> None:
    row = [{"age": 150, "income": 1000.0, "country": "DE", "vip": True}]
    counted = contract.validate(Batch.from_records(row))
    assert counted.ok
    assert counted.counts == {"age": {"out_of_range": 1}}
    strict = contract.replace_feature("age", on_out_of_range="reject")
    rejected = strict.validate(Batch.from_records(row))
    assert "outside the contract range [20, 50]" in str(rejected.violations[0])
    assert str(rejected.violations[0]).startswith("feature 'age' of row 0 is 150")


def test_clip_policy_clips_into_the_range(contract: Contract) -> None:
    clipping = contract.replace_feature("age", on_out_of_range="clip")
    result = clipping.validate(
        Batch.from_columns(
            {"age": [5, 99], "income": [1000.0, 1000.0], "country": ["DE", "DE"], "vip": [True, True]}
        )
    )
    assert result.batch.columns["age"].tolist() == [20, 50]
    assert result.counts == {"age": {"clipped": 2}}


def test_unseen_category_policy(contract: Contract) -> None:
    row = [{"age": 30, "income": 1000.0, "country": "XX", "vip": True}]
    assert contract.validate(Batch.from_records(row)).counts == {"country": {"unseen_category": 1}}
    strict = contract.replace_feature("country", on_unseen_category="reject")
    assert "categories" in strict.validate(Batch.from_records(row)).violations[0].reason


def test_missing_value_policies_reject_impute_and_pass(contract: Contract) -> None:
    row = [{"age": None, "income": None, "country": "DE", "vip": True}]
    result = contract.validate(Batch.from_records(row))
    assert [v.feature for v in result.violations] == ["age"]
    assert result.counts == {"income": {"missing": 1}}
    imputing = contract.replace_feature("age", on_missing="impute", impute_value=33)
    imputed = imputing.validate(Batch.from_records(row))
    assert imputed.ok
    assert imputed.batch.columns["age"].tolist() == [33]


def test_validation_is_vectorised_over_a_hundred_thousand_rows(contract: Contract) -> None:
    n = 100_000
    data = Batch.from_columns(
        {
            "age": np.full(n, 30),
            "income": np.full(n, 1000.0),
            "country": np.array(["DE"] * n, dtype=object),
            "vip": np.ones(n, dtype=bool),
        }
    )
    data.columns["age"][::1000] = 500
    strict = contract.replace_feature("age", on_out_of_range="reject")
    result = strict.validate(data)
    assert len(result.violations) == 100
    assert result.accepted_rows.size == n - 100


def test_yaml_round_trip_keeps_every_rule(contract: Contract) -> None:
    edited = contract.replace_feature("age", on_out_of_range="reject", pii=True)
    text = yaml.safe_dump(edited.to_dict(), sort_keys=False)
    assert Contract.from_dict(yaml.safe_load(text)) == edited


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"dtype": "date"}, "dtype 'date'"),
        ({"on_missing": "ignore"}, "on_missing='ignore'"),
        ({"colour": "red"}, "unknown keys"),
        ({"on_missing": "impute"}, "no impute_value"),
        ({"min": "low"}, "expected a number"),
    ],
)
def test_malformed_contract_entries_are_named(
    contract: Contract, change: dict[str, object], message: str
) -> None:
    data = contract.to_dict()
    data["features"][0] = {
        k: v for k, v in data["features"][0].items() if k != "impute_value" or "on_missing" not in change
    } | change
    with pytest.raises(ContractError, match=message):
        Contract.from_dict(data)


def test_feature_rejects_a_range_on_a_string() -> None:
    with pytest.raises(ContractError, match="cannot have a range"):
        Feature(name="c", dtype=DType.STRING, min=1.0)


def test_the_one_pass_numeric_check_gives_the_per_feature_outcome() -> None:
    contract = Contract(
        features=(
            Feature(name="a", dtype=DType.FLOAT, min=0.0, max=1.0),
            Feature(name="b", dtype=DType.INT, min=0.0, max=10.0),
            Feature(name="c", dtype=DType.FLOAT, nullable=True, on_missing="pass"),
            Feature(name="d", dtype=DType.INT, min=0.0, max=5.0, on_out_of_range="clip"),
        ),
        task="regression",
    )
    batch = Batch.from_columns(
        {"a": [0.5, 1.5, 0.2], "b": [1.0, 2.5, 3.0], "c": [1.0, float("nan"), 2.0], "d": [1, 2, 9]}
    )
    result = contract.validate(batch)
    assert [(v.row, v.feature) for v in result.violations] == [(1, "b")]
    assert result.counts == {"a": {"out_of_range": 1}, "c": {"missing": 1}, "d": {"clipped": 1}}
    assert result.batch.columns["b"].dtype == np.int64
    assert result.batch.columns["d"].tolist() == [1, 2, 5]
    clean = contract.validate(Batch.from_columns({"a": [0.1], "b": [2.0], "c": [3.0], "d": [4]}))
    assert clean.ok
    assert clean.batch.columns["b"].dtype == np.int64
    assert clean.batch.columns["b"].tolist() == [2]


def test_large_batches_checked_column_by_column_give_the_small_batch_outcome() -> None:
    """Batches of thousands of rows take the column-wise path (out-of-range values under 'allow'
    are only counted there); the findings and values must be those of the row-wise path."""
    contract = Contract(
        features=(
            Feature(name="a", dtype=DType.FLOAT, min=-1.0, max=1.0),
            Feature(name="b", dtype=DType.FLOAT, min=-1.0, max=1.0, on_out_of_range="reject"),
            Feature(name="c", dtype=DType.INT, min=0.0, max=5.0),
            Feature(name="d", dtype=DType.FLOAT, min=-2.0, max=2.0, on_out_of_range="clip"),
            Feature(name="e", dtype=DType.FLOAT, min=-3.0, max=3.0, nullable=True, on_missing="pass"),
            Feature(name="f", dtype=DType.INT, min=0.0, max=3.0),
        ),
        task="regression",
    )
    rng = np.random.default_rng(0)
    n = 6000
    columns = {
        "a": rng.normal(0, 1, n),
        "b": rng.normal(0, 0.3, n),
        "c": rng.integers(0, 7, n),
        "d": rng.normal(0, 1.5, n),
        "e": rng.normal(0, 1, n),
        "f": rng.integers(0, 5, n).astype(float),
    }
    columns["e"][7] = np.nan
    columns["f"][9] = 1.5
    batch = Batch(columns, n)
    whole = contract.validate(batch)
    parts = [contract.validate(batch.slice(start, start + 100)) for start in range(0, n, 100)]
    counts: dict[str, dict[str, int]] = {}
    for part in parts:
        for name, found in part.counts.items():
            for kind, hits in found.items():
                counts.setdefault(name, {}).setdefault(kind, 0)
                counts[name][kind] += hits
    assert whole.counts == counts
    assert whole.counts["a"]["out_of_range"] > 0
    offsets = list(range(0, n, 100))
    assert whole.rejected_rows.tolist() == [
        int(row) + offset for part, offset in zip(parts, offsets, strict=True) for row in part.rejected_rows
    ]
    for name in columns:
        pieces = np.concatenate([part.batch.columns[name] for part in parts])
        assert whole.batch.columns[name].dtype == pieces.dtype
        np.testing.assert_array_equal(whole.batch.columns[name], pieces)
