"""The two plug-in points every framework adapter follows: `Flavor` and `Predictor`.

A flavor turns a framework's model into files (`SavedModel`) and back into a `Predictor`,
whose one call `predict(batch) -> Predictions` is what every path (REST, gRPC, batch, Spark)
makes. A saved model travels as one deterministic zip: `shipyard.json` plus the flavor's files.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from shipyard.core.batch import Array, Batch, Label, Predictions
from shipyard.core.jsonsafe import json_safe
from shipyard.errors import FlavorError, MissingDependencyError

__all__ = [
    "Flavor",
    "LoadOptions",
    "Predictor",
    "SavedModel",
    "by_class",
    "classes_of",
    "classified",
    "labels_of",
    "pack",
    "require",
    "task_meta",
    "unpack",
]

_MANIFEST = "shipyard.json"
_EPOCH = (1980, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class SavedModel:
    """A model as files plus what its flavor needs to know to load it.

    Args:
        flavor: the flavor's name.
        files: file name to bytes.
        meta: JSON-safe facts: framework version, task, classes, feature names, parameters.
    """

    flavor: str
    files: Mapping[str, bytes]
    meta: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class LoadOptions:
    """What the caller trusts when loading.

    Args:
        trust_pickle: allow flavors that unpickle their artifact (pyfunc), which runs its code.
        trusted_types: extra fully-qualified type names a skops artifact may construct.
        signed: the version's signature by a trusted key verified (or the bytes were made in
            this process, as registering does); nothing is unpickled without both this and `trust_pickle`.
    """

    trust_pickle: bool = False
    trusted_types: tuple[str, ...] = ()
    signed: bool = False


@runtime_checkable
class Predictor(Protocol):
    """A loaded model: the one call every serving path makes."""

    def predict(self, batch: Batch) -> Predictions:
        """Predict the rows of `batch`, which holds the contract's features in order."""
        ...


class Flavor(Protocol):
    """How one framework's models are recognised, saved and loaded safely."""

    @property
    def name(self) -> str:
        """The flavor's name, stored with every version."""
        ...

    @property
    def suffixes(self) -> tuple[str, ...]:
        """The file suffixes of the framework's own model files."""
        ...

    @property
    def unpickles(self) -> bool:
        """True when loading unpickles the artifact, running its code (it then needs `trust_pickle`
        and a verified signature)."""
        ...

    def accepts(self, model: object) -> bool:
        """True when this flavor can save `model` (checked by type, without importing it)."""
        ...

    def save(self, model: object) -> SavedModel:
        """Turn `model` into files and facts."""
        ...

    def load(self, saved: SavedModel, options: LoadOptions) -> Predictor:
        """Build a predictor from saved files, refusing anything not trusted."""
        ...

    def read_file(self, data: bytes, options: LoadOptions) -> object:
        """Read a model file of this framework's own format into the framework's object."""
        ...


def pack(saved: SavedModel) -> bytes:
    """The saved model as one zip whose bytes depend only on its content."""
    buffer = io.BytesIO()
    manifest = {"flavor": saved.flavor, "files": sorted(saved.files), "meta": dict(saved.meta)}
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        entries = {_MANIFEST: json.dumps(manifest, sort_keys=True).encode(), **saved.files}
        for name in sorted(entries):
            info = zipfile.ZipInfo(name, date_time=_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, entries[name])
    return buffer.getvalue()


def unpack(data: bytes) -> SavedModel:
    """Read a zip written by `pack`.

    Raises:
        FlavorError: the bytes are not a Shipyard model package.
    """
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            manifest = json.loads(archive.read(_MANIFEST))
            files = {name: archive.read(name) for name in manifest["files"]}
    except (zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise FlavorError(f"the artifact is not a Shipyard model package ({exc})") from None
    return SavedModel(manifest["flavor"], files, manifest.get("meta", {}))


def require(module: str, *, flavor: str, extra: str) -> Any:
    """Import a framework a flavor needs, or say how to install it.

    Raises:
        MissingDependencyError: the module is not installed.
    """
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingDependencyError(
            f"the {flavor} flavor needs the {module.split('.', maxsplit=1)[0]} package, which is not "
            f"installed; install it with: pip install 'shipyard[{extra}]'"
        ) from None


def module_of(model: object) -> str:
    """The top-level module of the object's type, read without importing anything."""
    return type(model).__module__.split(".", 1)[0]


def jsonable(value: Any) -> Any:
    """A parameter value as JSON-safe data; anything exotic becomes its repr (`core/jsonsafe.py`)."""
    return json_safe(value, keep_nan=True, other=repr)


def plain_labels(classes: Any) -> list[Any]:
    """Class labels as plain Python values (numpy scalars unwrapped)."""
    return [c.item() if hasattr(c, "item") else c for c in list(classes)]


def task_meta(classes: Any) -> dict[str, Any]:
    """What a saved model records of its task: a classifier's classes (as plain labels), or regression.

    Args:
        classes: the fitted model's classes, or None for a regressor.
    """
    if classes is None:
        return {"task": "regression"}
    return {"task": "classification", "classes": plain_labels(classes)}


def classes_of(meta: Mapping[str, Any]) -> tuple[Label, ...] | None:
    """The classes a saved model recorded (`task_meta`), or None for a regressor."""
    classes = meta.get("classes")
    return tuple(classes) if classes is not None else None


def by_class(probabilities: Array) -> Array:
    """Probabilities as rows x classes: a binary model's one column (the positive class's) becomes
    two, the negative class's first."""
    scores = np.asarray(probabilities, dtype=np.float64)
    return np.column_stack([1.0 - scores, scores]) if scores.ndim == 1 else scores


def labels_of(probabilities: Array, classes: Sequence[Label] | Array) -> Array:
    """Each row's most probable class: `classes[argmax]` over the row's probabilities.

    Args:
        probabilities: rows x classes, in the order of `classes`.
        classes: the class labels; a numpy array keeps its dtype, anything else gives objects.
    """
    table = classes if isinstance(classes, np.ndarray) else np.asarray(classes, dtype=object)
    return np.asarray(table[probabilities.argmax(axis=1)])


def classified(probabilities: Array, classes: tuple[Label, ...]) -> Predictions:
    """A scoring classifier's predictions: each row's label is its most probable class.

    Args:
        probabilities: rows x classes, in the order of `classes`.
        classes: the class labels.
    """
    return Predictions("classification", labels_of(probabilities, classes), probabilities, classes)
