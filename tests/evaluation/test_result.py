"""An evaluation's result as stored: JSON-safe, undefined metrics as null."""

from __future__ import annotations

from shipyard import Registry, evaluate


def test_undefined_metrics_are_stored_as_null_never_nan(sqlite_registry: Registry) -> None:
    import json

    from sklearn.datasets import load_diabetes
    from sklearn.linear_model import Ridge

    X, y = load_diabetes(return_X_y=True, as_frame=True)
    sqlite_registry.register(Ridge().fit(X, y), name="d", train_data=X.assign(t=y), target="t")
    frame = X.assign(t=y, grp=["solo"] + ["many"] * (len(X) - 1))
    result = evaluate(
        "d:1", frame, target="t", slices=["grp"], robust=False, resamples=0, registry=sqlite_registry
    )
    stored = sqlite_registry.results.evaluations("d:1")[0].body

    def refuse(constant: str) -> None:
        raise AssertionError(f"{constant} in JSON")

    text = json.dumps(result.to_dict())
    json.loads(text, parse_constant=refuse)
    solo = next(g for g in stored["slices"]["grp"]["groups"] if g["value"] == "solo")
    assert solo["rows"] == 1 and solo["metrics"]["r2"] is None
