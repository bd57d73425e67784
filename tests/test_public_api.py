from __future__ import annotations

import inspect

import shipyard
import shipyard.errors


def test_all_is_sorted_and_complete() -> None:
    assert shipyard.__all__ == sorted(shipyard.__all__)
    public = {
        n
        for n, v in vars(shipyard).items()
        if not n.startswith("_")
        and (inspect.isclass(v) or inspect.isfunction(v))
        and v.__module__.startswith("shipyard")
    }
    assert public <= set(shipyard.__all__)
    for name in shipyard.__all__:
        assert hasattr(shipyard, name), name


def test_public_names_are_imported_on_first_use_and_each_is_exported() -> None:
    import subprocess
    import sys

    assert set(shipyard._LAZY) <= set(shipyard.__all__)
    for name, module in shipyard._LAZY.items():
        assert getattr(shipyard, name).__module__.startswith(module), name
    # `import shipyard` alone imports neither pandas nor SciPy: the CLI starts fast.
    script = "import shipyard, sys; print(sorted({'pandas', 'scipy', 'sklearn'} & set(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_every_error_is_exported_and_rooted_in_shipyard_error() -> None:
    for name in shipyard.errors.__all__:
        error = getattr(shipyard.errors, name)
        assert issubclass(error, shipyard.ShipyardError)
        assert name in shipyard.__all__


def test_register_and_load_use_the_default_registry(monkeypatch, tmp_path, cancer, cancer_model):
    from shipyard.registry import default

    monkeypatch.setenv("SHIPYARD_HOME", str(tmp_path))
    monkeypatch.delenv("SHIPYARD_DB_URL", raising=False)
    monkeypatch.delenv("SHIPYARD_STORE_URL", raising=False)
    default.reset()
    try:
        version = shipyard.register(
            cancer_model, name="cancer", train_data=cancer, target="label", alias="staging"
        )
        assert version.ref == shipyard.ModelRef("cancer", version=1)
        predictions = shipyard.load("cancer@staging").predict(cancer.drop(columns=["label"]))
        assert predictions.n_rows == len(cancer)
        assert (tmp_path / "shipyard.db").exists()
    finally:
        default.reset()
