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
