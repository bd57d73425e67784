"""What a skops file may build or call unasked: named classes and a reviewed list of functions.

skops reads a model file without unpickling it, but the file still names the classes it builds
and the functions it stores (a `FunctionTransformer`'s `func`, a `partial`'s target), and the
model calls those functions on every prediction. skops vets its own defaults (scikit-learn
estimators, numpy and scipy.special ufuncs, numpy scalar types) and reports every other name;
this module decides about those names:

- a class is trusted when the name resolves to a class of scikit-learn (an estimator or one of
  the helper families fitted models hold: trees, kernels, losses, distance metrics, optimizers)
  or a numpy/scipy data type (arrays, dtypes, scalars, random generators, sparse matrices);
- a function is trusted only when it is on `TRUSTED_FUNCTIONS`, a reviewed list of pure maths;
- a `functools.partial` is trusted only when the function it wraps is on that list (binding
  arguments to pure maths cannot make it write a file; scikit-learn's own
  HistGradientBoosting holds `partial(check_array, ...)`);
- anything else, methods and every file, I/O or system function included, is trusted only
  when the caller names it (`trusted_types`, CLI `--trust-type`).

Names are resolved the way skops resolves them (import the module, one attribute), and only
inside scikit-learn, numpy and scipy, never in their test helpers: checking a file imports no
module the file could choose for its side effects.
"""

from __future__ import annotations

import functools
import importlib
import sys
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["TRUSTED_CLASS_FAMILIES", "TRUSTED_FUNCTIONS", "partial_targets", "refused_global", "untrusted"]

# Base classes (public paths) whose subclasses a skops file may build, by the package that must
# define the subclass. Each family was reviewed: building one runs no code beyond setting state.
TRUSTED_CLASS_FAMILIES: Mapping[str, tuple[str, ...]] = {
    "sklearn": (
        "sklearn.base.BaseEstimator",  # estimators, transformers, pipelines and their helpers
        "sklearn.gaussian_process.kernels.Kernel",
        "sklearn._loss.loss.BaseLoss",
        "sklearn._loss.link.BaseLink",
        "sklearn.metrics.DistanceMetric",
        "sklearn.neural_network._stochastic_optimizers.BaseOptimizer",
        # Fitted state of trees, neighbours, calibration and clustering models.
        "sklearn.tree._tree.Tree",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        "sklearn.neighbors.KDTree",
        "sklearn.neighbors.BallTree",
        "sklearn.calibration._CalibratedClassifier",
        "sklearn.cluster._bisect_k_means._BisectingTree",
        "sklearn.compose.make_column_selector",
        # What a fitted search (GridSearchCV) keeps: its splitter and scorer.
        "sklearn.model_selection.BaseCrossValidator",
        "sklearn.model_selection._split.BaseShuffleSplit",
        "sklearn.metrics._scorer._BaseScorer",
        "sklearn.metrics._scorer._PassthroughScorer",
        "sklearn.utils.Bunch",
    ),
    "numpy": (
        "numpy.ndarray",  # exactly: its subclass numpy.memmap maps a file
        "numpy.ma.MaskedArray",
        "numpy.generic",  # scalar types
        "numpy.dtype",  # dtypes and numpy.dtypes.*
        "numpy.random.RandomState",
        "numpy.random.Generator",
        "numpy.random.BitGenerator",
        "numpy.random.SeedSequence",
    ),
    "scipy": (
        "scipy.sparse.spmatrix",
        "scipy.sparse.sparray",
        "scipy.interpolate.BSpline",  # SplineTransformer's splines
    ),
}
# Families trusted as the exact class only, not their subclasses.
_EXACT = frozenset({"numpy.ndarray", "numpy.ma.MaskedArray"})

# Functions a fitted model may hold and call: pure maths, no file, I/O, process or network
# access. Public paths; the name a file writes may be the defining module's, which is accepted
# too when it is the same function.
TRUSTED_FUNCTIONS: tuple[str, ...] = (
    "numpy.amax",
    "numpy.amin",
    "numpy.argmax",
    "numpy.argmin",
    "numpy.around",
    "numpy.asanyarray",
    "numpy.asarray",
    "numpy.average",
    "numpy.clip",
    "numpy.cumprod",
    "numpy.cumsum",
    "numpy.diff",
    "numpy.max",
    "numpy.mean",
    "numpy.median",
    "numpy.min",
    "numpy.nan_to_num",
    "numpy.nanmax",
    "numpy.nanmean",
    "numpy.nanmedian",
    "numpy.nanmin",
    "numpy.nanpercentile",
    "numpy.nanquantile",
    "numpy.nanstd",
    "numpy.nansum",
    "numpy.nanvar",
    "numpy.percentile",
    "numpy.prod",
    "numpy.ptp",
    "numpy.quantile",
    "numpy.ravel",
    "numpy.round",
    "numpy.sort",
    "numpy.std",
    "numpy.sum",
    "numpy.var",
    "scipy.special.log_softmax",
    "scipy.special.logsumexp",
    "scipy.special.softmax",
    "scipy.stats.zscore",
    "sklearn.feature_selection.chi2",
    "sklearn.feature_selection.f_classif",
    "sklearn.feature_selection.f_regression",
    "sklearn.feature_selection.mutual_info_classif",
    "sklearn.feature_selection.mutual_info_regression",
    "sklearn.feature_selection.r_regression",
    "sklearn.metrics.accuracy_score",
    "sklearn.metrics.average_precision_score",
    "sklearn.metrics.balanced_accuracy_score",
    "sklearn.metrics.f1_score",
    "sklearn.metrics.log_loss",
    "sklearn.metrics.mean_absolute_error",
    "sklearn.metrics.mean_squared_error",
    "sklearn.metrics.precision_score",
    "sklearn.metrics.r2_score",
    "sklearn.metrics.recall_score",
    "sklearn.metrics.roc_auc_score",
    "sklearn.utils.check_array",
    # Held by fitted models under private names: BisectingKMeans' algorithm, BSpline's array maker.
    "sklearn.cluster._kmeans._kmeans_single_elkan",
    "sklearn.cluster._kmeans._kmeans_single_lloyd",
    "scipy._lib.array_api_compat.numpy.asarray",
)

_PARTIAL = "functools.partial"
_PACKAGES = ("sklearn", "numpy", "scipy")
_TEST_PARTS = ("test", "tests", "testing", "_testing", "conftest")


def untrusted(
    names: Iterable[str], *, partials: Iterable[str] = (), extra: Iterable[str] = ()
) -> dict[str, str]:
    """The names a skops file uses that nobody trusts, each with why.

    Args:
        names: the fully qualified names skops reported as outside its defaults.
        partials: the name of the function each `functools.partial` in the file wraps.
        extra: names the caller trusts besides the policy (`--trust-type`).

    Returns:
        Name to a short reason, for the names neither the policy nor `extra` trusts.
    """
    allowed = set(extra)
    functions = _trusted_function_names()
    refused: dict[str, str] = {}
    for name in sorted(set(names)):
        if name in allowed or name in functions:
            continue
        if name == _PARTIAL:
            wrapped = sorted({p for p in partials if p not in functions and p not in allowed})
            if wrapped or not partials:
                refused[name] = (
                    f"binds arguments, such as a file path, to {', '.join(wrapped) or 'a function'}, "
                    "which is not on the allow-list"
                )
            continue
        reason = _reason(name)
        if reason:
            refused[name] = reason
    return refused


def refused_global(name: str, *, families: Iterable[str] = ()) -> str:
    """Why the policy refuses the class or function `name` (a pickle's global), or '' if trusted.

    The same decision as `untrusted` makes for a class or function, made without importing more
    than `name`'s own module: a family's base class is looked at only when its module is already
    imported (a class that derives from it imported it first, and every base here is defined
    under the package of its public path), and a function is compared only with the entries of
    `TRUSTED_FUNCTIONS` of the same name. Loading a baked model thus costs no import of every
    estimator, metric and statistic that `untrusted` resolves once.

    Args:
        name: the fully qualified name.
        families: more base classes (public paths) trusted with their subclasses.
    """
    target = _resolve(name)
    if target is None:
        return "not a class of scikit-learn, numpy or scipy, nor a function on the allow-list"
    if isinstance(target, type):
        return (
            ""
            if _in_imported_family(target, name, tuple(families))
            else "a class outside the trusted families"
        )
    attribute = name.rpartition(".")[2]
    for path in TRUSTED_FUNCTIONS:
        if path.rpartition(".")[2] == attribute and _import(path) is target:
            return ""
    return "a function that is not on the allow-list"


def _in_imported_family(cls: type, name: str, more: tuple[str, ...]) -> bool:
    package = name.split(".", 1)[0]
    if cls.__module__.split(".", 1)[0] != package:
        return False  # a class re-exported from elsewhere is judged where it lives
    for path in (*TRUSTED_CLASS_FAMILIES.get(package, ()), *(p for p in more if p.startswith(f"{package}."))):
        module_name, _, attribute = path.rpartition(".")
        module = sys.modules.get(module_name)
        base = getattr(module, attribute, None) if module is not None else None
        if isinstance(base, type) and (cls is base or (path not in _EXACT and issubclass(cls, base))):
            return True
    return False


def partial_targets(schema: Any) -> list[str]:
    """The name of the function each `functools.partial` wraps, read from a skops schema."""
    found: list[str] = []
    stack = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, dict):
            if node.get("__loader__") == "PartialNode":
                func = node.get("content", {}).get("func", {})
                found.append(f"{func.get('__module__', '?')}.{func.get('__class__', '?')}")
            stack.extend(node.values())
    return found


def _reason(name: str) -> str:
    """Why `name` is not trusted, or '' when it names a trusted class."""
    target = _resolve(name)
    if target is None:
        return "not a class of scikit-learn, numpy or scipy, nor a function on the allow-list"
    if not isinstance(target, type):
        return "a function that is not on the allow-list"
    if _trusted_class(target, name):
        return ""
    return "a class outside the trusted families"


def _resolve(name: str) -> Any:
    """What `name` names, resolved as skops does; None outside trusted packages or when absent."""
    module_name, _, attribute = name.rpartition(".")
    parts = module_name.split(".")
    if parts[0] not in _PACKAGES or any(p.startswith(_TEST_PARTS) for p in parts):
        return None
    try:
        return getattr(importlib.import_module(module_name), attribute)
    except Exception:  # any failure to find the name leaves it untrusted
        return None


def _trusted_class(cls: type, name: str) -> bool:
    package = name.split(".", 1)[0]
    if cls.__module__.split(".", 1)[0] != package:
        return False  # a class re-exported from elsewhere is judged where it lives
    for family in _families().get(package, ()):
        base, exact = family
        if cls is base or (not exact and issubclass(cls, base)):
            return True
    return False


@functools.cache
def _families() -> dict[str, list[tuple[type, bool]]]:
    """The trusted class families as classes (each resolved once; a missing one is skipped)."""
    families: dict[str, list[tuple[type, bool]]] = {}
    for package, paths in TRUSTED_CLASS_FAMILIES.items():
        for path in paths:
            base = _import(path)
            if isinstance(base, type):
                families.setdefault(package, []).append((base, path in _EXACT))
    return families


@functools.cache
def _trusted_function_names() -> frozenset[str]:
    """Every name a file may write for a function on `TRUSTED_FUNCTIONS`."""
    names: set[str] = set()
    for path in TRUSTED_FUNCTIONS:
        function = _import(path)
        if function is None or isinstance(function, type):
            continue  # not in this version of the library
        names.add(path)
        defined = f"{getattr(function, '__module__', '')}.{getattr(function, '__name__', '')}"
        if _import(defined) is function:
            names.add(defined)
    return frozenset(names)


def _import(path: str) -> Any:
    module_name, _, attribute = path.rpartition(".")
    try:
        return getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError):
        return None
