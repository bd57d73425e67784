"""Framework adapters: each flavor saves a model safely and loads it as a `Predictor`.

The flavors are listed here explicitly, in the order they are tried on an unknown object;
nothing registers itself at import.
"""

from __future__ import annotations

from pathlib import Path

from shipyard.errors import FlavorError, UnknownFlavorError
from shipyard.flavors.base import Flavor, LoadOptions, Predictor, SavedModel, pack, unpack
from shipyard.flavors.lightgbm import LightGBMFlavor
from shipyard.flavors.onnx import ONNXFlavor
from shipyard.flavors.pickled import PICKLE_SUFFIXES
from shipyard.flavors.pyfunc import PyFuncFlavor
from shipyard.flavors.sklearn import SklearnFlavor
from shipyard.flavors.xgboost import XGBoostFlavor

__all__ = [
    "FLAVORS",
    "Flavor",
    "LoadOptions",
    "Predictor",
    "SavedModel",
    "flavor_for",
    "flavor_for_file",
    "flavor_named",
    "pack",
    "unpack",
]

FLAVORS: tuple[Flavor, ...] = (
    SklearnFlavor(),
    XGBoostFlavor(),
    LightGBMFlavor(),
    ONNXFlavor(),
    PyFuncFlavor(),
)


def flavor_named(name: str) -> Flavor:
    """The flavor called `name`.

    Raises:
        UnknownFlavorError: no flavor has that name.
    """
    for flavor in FLAVORS:
        if flavor.name == name:
            return flavor
    raise UnknownFlavorError(f"unknown flavor {name!r}; expected one of {[f.name for f in FLAVORS]}")


def flavor_for(model: object) -> Flavor:
    """The first flavor that accepts `model` (pyfunc last, for any object with `predict`).

    Raises:
        UnknownFlavorError: no flavor accepts it.
    """
    for flavor in FLAVORS:
        if flavor.accepts(model):
            return flavor
    raise UnknownFlavorError(
        f"no flavor accepts a {type(model).__module__}.{type(model).__qualname__}; expected a "
        "scikit-learn, XGBoost, LightGBM or ONNX model, or an object with a predict method "
        "(registered with trust_pickle=True: it is stored as a pickle)"
    )


def flavor_for_file(path: Path) -> Flavor:
    """The flavor whose file format `path` has, by its suffix.

    Raises:
        FlavorError: the suffix is a pickle's, or no flavor reads it.
    """
    suffix = path.suffix.lower()
    if suffix in PICKLE_SUFFIXES:
        raise FlavorError(
            f"{path} is a pickle, which no flavor reads; register it with trust_pickle=True "
            "(CLI: --trust-pickle) if you trust who made it, or save the model with skops "
            "(skops.io.dump(model, 'model.skops'))"
        )
    for flavor in FLAVORS:
        if suffix in flavor.suffixes:
            return flavor
    known = sorted(s for f in FLAVORS for s in f.suffixes)
    raise UnknownFlavorError(
        f"{path} has suffix {suffix!r}, which no flavor reads; expected one of {known}, "
        "or name the flavor with --flavor"
    )
