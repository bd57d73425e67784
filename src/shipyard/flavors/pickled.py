"""Pickle and joblib model files: read once, when they are registered, and only on the caller's word.

Unpickling runs whatever code the file names, so Shipyard never unpickles a file on its own.
With `trust_pickle`, `Registry.register_file` reads one (a model you or your team trained and
saved with `pickle` or `joblib`) and registers the object it holds like any other: a
scikit-learn model is stored through skops, XGBoost and LightGBM in their own formats, so
the version loads without pickle from then on. Only an object no safe flavor takes becomes a
pyfunc version, which stays a pickle and loads only with `trust_pickle` and a signature.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path

from shipyard.errors import FlavorError, UntrustedArtifactError
from shipyard.flavors.base import LoadOptions, require

__all__ = ["PICKLE_SUFFIXES", "is_pickle", "read_pickle"]

PICKLE_SUFFIXES = (".pkl", ".pickle", ".joblib")


def is_pickle(path: Path) -> bool:
    """Whether `path` is named like a pickle or joblib file."""
    return path.suffix.lower() in PICKLE_SUFFIXES


def read_pickle(path: Path, options: LoadOptions) -> object:
    """The object a pickle or joblib file holds.

    Raises:
        UntrustedArtifactError: `trust_pickle` is not set.
        FlavorError: the file does not unpickle.
    """
    if not options.trust_pickle:
        raise UntrustedArtifactError(
            f"{path} is a pickle; unpickling runs whatever code it names, so Shipyard reads one only "
            "when you say you trust it: register it with trust_pickle=True (CLI: --trust-pickle), "
            "or save the model with skops (skops.io.dump(model, 'model.skops')) and register that"
        )
    data = path.read_bytes()
    try:
        if path.suffix.lower() == ".joblib":
            joblib = require("joblib", flavor="sklearn", extra="sklearn")
            return joblib.load(io.BytesIO(data))
        return pickle.loads(data)  # the caller vouched for this file (trust_pickle)
    except Exception as exc:
        raise FlavorError(f"{path} could not be unpickled: {exc!r}") from None
