"""Concept drift: scores of labelled traffic with intervals, detectors on the error stream, estimates."""

from __future__ import annotations

import numpy as np
import pytest

from shipyard.monitoring.concept import Detection, detect, estimate_accuracy, performance


def _outputs(proba_1: list[float]) -> dict[str, np.ndarray]:
    p = np.asarray(proba_1)
    return {"prediction": (p >= 0.5).astype(np.int64), "proba_0": 1.0 - p, "proba_1": p}


def test_a_classifiers_performance_scores_the_labelled_rows_with_intervals_and_its_mistakes() -> None:
    rng = np.random.default_rng(1)
    proba = rng.uniform(size=400)
    truth = (rng.uniform(size=400) < proba).astype(np.int64)  # a calibrated model
    outputs = _outputs(proba.tolist())
    scored = performance("classification", (0, 1), truth, outputs, resamples=100, seed=3)
    accuracy = float(np.mean(outputs["prediction"] == truth))
    assert scored["rows"] == 400
    assert scored["metrics"]["accuracy"] == pytest.approx(accuracy)
    assert {"accuracy", "f1_macro"} <= set(scored["metrics"])
    low, high = scored["ci"]["accuracy"]["low"], scored["ci"]["accuracy"]["high"]
    assert low <= accuracy <= high and scored["ci"]["accuracy"]["level"] == 0.95
    np.testing.assert_array_equal(scored["errors"], (outputs["prediction"] != truth).astype(float))
    again = performance("classification", (0, 1), truth, outputs, resamples=100, seed=3)
    assert again["ci"] == scored["ci"]  # the bootstrap is seeded
    assert performance("classification", (0, 1), truth, outputs, resamples=0)["ci"] == {}


def test_a_regressors_performance_is_its_errors_and_a_label_outside_the_classes_is_refused() -> None:
    truth = [1.0, 2.0, 3.0, 4.0]
    scored = performance("regression", None, truth, {"prediction": np.array([1.5, 2.0, 2.0, 4.0])})
    assert scored["metrics"]["mae"] == pytest.approx(0.375)
    np.testing.assert_allclose(scored["errors"], [0.5, 0.0, 1.0, 0.0])
    with pytest.raises(ValueError, match=r"labels \['7'\] that the model has never seen"):
        performance("classification", (0, 1), [0, 7], _outputs([0.2, 0.9]), resamples=0)


def test_the_detectors_signal_when_the_mistakes_start_and_not_before() -> None:
    steady = np.zeros(500)
    assert detect(steady, binary=True) == []
    rng = np.random.default_rng(2)
    stream = np.concatenate([(rng.uniform(size=1000) < 0.05), (rng.uniform(size=1000) < 0.6)]).astype(float)
    found = detect(stream, binary=True, warnings=True)
    drifts = [d for d in found if d.kind == "drift"]
    assert {d.detector for d in drifts} == {"ADWIN", "DDM"}
    assert all(d.index >= 1000 for d in drifts if d.detector == "ADWIN")  # only after the change
    first_ddm = next(d for d in drifts if d.detector == "DDM" and d.index >= 1000)
    assert first_ddm.index < 1100  # within a hundred rows of the change
    warnings = [d for d in found if d.kind == "warning"]
    assert warnings and all(w.detector == "DDM" for w in warnings)
    assert any(1000 <= w.index <= first_ddm.index for w in warnings)  # the warning comes first
    assert all(d.detector == "ADWIN" for d in detect(stream, binary=False))  # DDM needs mistakes
    assert Detection("ADWIN", "drift", 3) == Detection("ADWIN", "drift", 3)


def test_accuracy_is_estimated_from_confidence_through_the_reliability_curve_when_there_is_one() -> None:
    outputs = _outputs([0.9, 0.8, 0.3, 0.1])
    plain = estimate_accuracy((0, 1), outputs)
    assert plain is not None
    assert plain["accuracy"] == pytest.approx(np.mean([0.9, 0.8, 0.7, 0.9]))
    assert plain["rows"] == 4 and plain["estimate"] is True and "uncalibrated" in plain["method"]
    # An over-confident model: what it calls 0.9 is right half the time, and 0.1 half the time too.
    curve = {"confidence": [0.0, 1.0], "observed": [0.5, 0.5]}
    calibrated = estimate_accuracy((0, 1), outputs, reliability=curve)
    assert calibrated is not None
    assert calibrated["accuracy"] == pytest.approx(0.5)
    assert "reliability curve" in calibrated["method"]
    assert estimate_accuracy((0, 1), {"prediction": outputs["prediction"]}) is None
