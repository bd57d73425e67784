"""The parity gate: the rows it compares, and what it refuses."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from homes import copy_home
from shipyard import Registry, Settings
from shipyard.core.batch import Batch, Predictions
from shipyard.edge.ensemble import Ensemble, Tree
from shipyard.edge.export import onnx_scorer
from shipyard.edge.onnx_export import to_onnx
from shipyard.edge.parity import UNSEEN, Holdout, check_parity, parity_rows
from shipyard.registry.loaded import LoadedModel


@pytest.fixture(scope="module")
def registry(edge_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Registry:
    home = copy_home(edge_home, tmp_path_factory.mktemp("parity") / "home")
    return Registry(Settings.for_home(home), actor="tester")


@pytest.fixture(scope="module")
def credit(registry: Registry) -> LoadedModel:
    return registry.load("credit:1")


def _stump(column: int, threshold: float) -> Ensemble:
    """One tree splitting input `column` at `threshold`: enough to give the gate split points."""
    tree = Tree(
        feature=np.array([column, -1, -1]),
        threshold=np.array([threshold, 0.0, 0.0]),
        left=np.array([1, -1, -1]),
        right=np.array([2, -1, -1]),
        missing_left=np.array([True, False, False]),
        value=np.array([[0.0], [-1.0], [1.0]]),
    )
    return Ensemble((tree,), n_features=7, n_outputs=1, targets=(None,), base=np.zeros(1), post="logistic")


def _off_by(scorer: object, amount: float, row: int, *, flip: bool = False) -> object:
    """`scorer` with one row's probabilities moved by `amount` (and its label flipped)."""

    def score(batch: Batch) -> Predictions:
        answers = scorer(batch)  # type: ignore[operator]
        probabilities = answers.probabilities.copy()
        probabilities[row] += [-amount, amount]
        values = answers.values.copy()
        if flip:
            values[row] = 1 - values[row]
        return replace(answers, values=values, probabilities=probabilities)

    return score


def test_the_rows_are_the_reference_sample_then_the_edges_the_contract_accepts(credit: LoadedModel) -> None:
    rows = parity_rows(credit)
    edges = rows.slice(100, rows.n_rows)
    assert rows.n_rows > 100
    assert np.isnan(edges.columns["income"]).any()  # nullable, passed to the model
    assert {18, 79} <= set(edges.columns["age"].tolist())  # the contract's min and max
    countries = set(edges.columns["country"].tolist())
    assert {"DE", "ES", "FR", "IT", "NL", UNSEEN} <= countries
    assert set(edges.columns["vip"].tolist()) == {False, True}
    assert edges.columns["age"].dtype == np.int64  # age may not be missing: no such row


def test_a_tree_model_adds_values_exactly_at_its_thresholds(credit: LoadedModel) -> None:
    ages = parity_rows(credit, ensemble=_stump(0, 30.5)).columns["age"]
    ratios = parity_rows(credit, ensemble=_stump(2, 0.25)).columns["debt_ratio"]
    assert {30, 31} <= set(ages.tolist())
    assert 0.25 in ratios and np.nextafter(0.25, 1.0) in ratios


def test_an_exact_export_passes(credit: LoadedModel) -> None:
    report = check_parity(credit, onnx_scorer(to_onnx(credit), credit.contract))
    assert report.passed, report.summary()
    assert (report.label_mismatches, report.differing_count) == (0, 0)
    assert report.max_abs_diff < 1e-12
    assert report.metric == "accuracy" and report.metric_delta == 0.0
    assert "version's answers as truth" in report.metric_data
    assert json.loads(json.dumps(report.to_dict()))["passed"] is True


def test_one_row_off_by_a_thousandth_is_refused_with_the_row_and_its_features(credit: LoadedModel) -> None:
    scorer = onnx_scorer(to_onnx(credit), credit.contract)
    report = check_parity(credit, _off_by(scorer, 1e-3, row=7))  # type: ignore[arg-type]
    assert not report.passed
    assert report.differing_count == 1 and report.label_mismatches == 0
    (row,) = report.differing
    assert row.row == 7 and row.diff == pytest.approx(1e-3)
    assert set(row.features) == set(credit.contract.names)  # not a tree model: every feature
    assert "1 rows differ" in report.summary() and "row 7:" in report.summary()
    assert check_parity(credit, _off_by(scorer, 1e-3, row=7), tolerance=1e-2).passed  # type: ignore[arg-type]


def test_a_flipped_label_is_refused(credit: LoadedModel) -> None:
    scorer = onnx_scorer(to_onnx(credit), credit.contract)
    report = check_parity(credit, _off_by(scorer, 0.0, row=3, flip=True))  # type: ignore[arg-type]
    assert not report.passed and report.label_mismatches == 1
    assert report.metric_delta == pytest.approx(-1 / report.rows)


def test_a_tree_models_differing_row_names_the_features_at_a_threshold(credit: LoadedModel) -> None:
    stump = _stump(0, 30.5)
    rows = parity_rows(credit, ensemble=stump)
    at = int(np.flatnonzero(rows.columns["age"] == 31)[-1])
    scorer = onnx_scorer(to_onnx(credit), credit.contract)
    report = check_parity(credit, _off_by(scorer, 1e-3, row=at), ensemble=stump)  # type: ignore[arg-type]
    assert list(report.differing[0].features) == ["age"]


def test_float32_is_held_to_its_own_bound(credit: LoadedModel) -> None:
    scorer = onnx_scorer(to_onnx(credit, dtype="float32"), credit.contract)
    report = check_parity(credit, scorer, dtype="float32")
    assert report.passed, report.summary()
    assert report.tolerance == 1e-4 and 1e-9 < report.max_abs_diff < 1e-4
    assert not check_parity(credit, scorer, dtype="float32", tolerance=1e-9).passed


def test_a_regressor_compares_values_and_measures_on_a_holdout(
    registry: Registry, applications: pd.DataFrame
) -> None:
    debt = registry.load("debt:1")
    holdout = Holdout(applications.drop(columns=["debt_ratio"]), applications["debt_ratio"].to_numpy())
    report = check_parity(debt, onnx_scorer(to_onnx(debt), debt.contract), holdout=holdout)
    assert report.passed, report.summary()
    assert report.metric == "mae" and report.metric_source > 0
    assert report.metric_data == "the holdout (300 rows the contract accepts)"
