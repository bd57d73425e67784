"""Which explainer a model gets: the exact model-specific one where there is one, else
model-agnostic Shapley values against the version's background sample.

The order for `method="auto"`: a pipeline's column-wise front is looked through (one attribution
per contract feature, one-hot children summed), then the final estimator is explained by TreeSHAP
(trees, forests, boosting), by the linear closed form (linear models), or, when neither fits
(MLP, SVC, k-NN, ONNX, custom Python), by exact Shapley values over every coalition for up to
`MAX_EXACT_FEATURES` features and by permutation sampling above that. 'lime' is asked for by name.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from shipyard.attribution.agnostic import AgnosticExplainer, agnostic_method
from shipyard.attribution.base import METHODS, Explainer
from shipyard.attribution.lime import LimeExplainer
from shipyard.attribution.linear import is_linear_estimator, linear_explainer
from shipyard.attribution.mapped import Mapped
from shipyard.attribution.pipelines import front_of
from shipyard.attribution.shapley import MAX_EXACT_FEATURES
from shipyard.attribution.tree_models import tree_explainer
from shipyard.core.batch import Batch, Label
from shipyard.errors import UnsupportedExplanationError
from shipyard.flavors.base import Predictor

__all__ = ["explainer_for", "possible_methods"]


def explainer_for(
    predictor: Predictor,
    *,
    names: Sequence[str],
    classes: tuple[Label, ...] | None,
    frame_input: bool,
    background: Batch | None,
    method: str = "auto",
    seed: int = 0,
) -> Explainer:
    """The explainer of `method` for a model.

    Args:
        predictor: the flavor's predictor (its `model` is the framework's object).
        names: the contract's features, in order.
        classes: the version's classes, or None for a regressor.
        frame_input: the model was fitted on a DataFrame (it is given one).
        background: the version's background sample (contract features, validated), or None.
        method: one of `METHODS`.
        seed: the seed of the sampling methods (the same request gives the same answer).

    Raises:
        UnsupportedExplanationError: the model cannot have this method; the message names the
            methods it can have.
    """
    if method not in METHODS:
        raise UnsupportedExplanationError(
            f"method {method!r} is not an explanation method; expected one of {list(METHODS)}"
        )
    names = tuple(names)
    model = getattr(predictor, "model", None)
    if method in ("auto", "tree_shap", "linear") and model is not None:
        chosen = _model_specific(
            model, names, classes=classes, frame_input=frame_input, background=background, method=method
        )
        if chosen is not None:
            return chosen
    if method in ("tree_shap", "linear"):
        possible = possible_methods(
            predictor, names=names, classes=classes, frame_input=frame_input, background=background
        )
        raise UnsupportedExplanationError(
            f"method {method!r} does not fit this model ({type(model).__name__}); it can have: {possible}"
        )
    if background is None:
        raise UnsupportedExplanationError(
            f"method {method!r} needs the version's background sample, and this version has "
            "none (it was registered without train_data); register it with train_data, or "
            "pass a background sample"
        )
    if method == "lime":
        return LimeExplainer(predictor, names=names, classes=classes, background=background, seed=seed)
    if method == "exact" and len(names) > MAX_EXACT_FEATURES:
        raise UnsupportedExplanationError(
            f"exact model-agnostic Shapley values are computed for at most {MAX_EXACT_FEATURES} "
            f"features (2**d coalitions); this model has {len(names)}. Ask for "
            "method='permutation' (sampling, with its error stated) or 'lime'"
        )
    chosen_method = agnostic_method(len(names)) if method == "auto" else method
    return AgnosticExplainer(
        predictor, names=names, classes=classes, background=background, method=chosen_method, seed=seed
    )


def _model_specific(
    model: Any,
    names: tuple[str, ...],
    *,
    classes: tuple[Label, ...] | None,
    frame_input: bool,
    background: Batch | None,
    method: str,
) -> Explainer | None:
    """TreeSHAP or the linear closed form on the final estimator, through the front; or None."""
    front = front_of(model, names=names, frame_input=frame_input)
    if front is None:
        return None
    if method in ("auto", "tree_shap"):
        engine = tree_explainer(front.estimator, classes=classes)
        if engine is not None:
            return Mapped(front, engine, names=names)
    if method in ("auto", "linear") and background is not None and is_linear_estimator(front.estimator):
        engine = linear_explainer(front.estimator, background=front.transform(background), classes=classes)
        if engine is not None:
            return Mapped(front, engine, names=names)
    return None


def possible_methods(
    predictor: Predictor,
    *,
    names: Sequence[str],
    classes: tuple[Label, ...] | None,
    frame_input: bool,
    background: Batch | None,
) -> list[str]:
    """The methods this model can be explained by, the exact ones first."""
    names = tuple(names)
    found: list[str] = []
    model = getattr(predictor, "model", None)
    if model is not None:
        front = front_of(model, names=names, frame_input=frame_input)
        if front is not None:
            if tree_explainer(front.estimator, classes=classes) is not None:
                found.append("tree_shap")
            elif (
                background is not None
                and is_linear_estimator(front.estimator)
                and linear_explainer(front.estimator, background=front.transform(background), classes=classes)
                is not None
            ):
                found.append("linear")
    if background is not None:
        if len(names) <= MAX_EXACT_FEATURES:
            found.append("exact")
        found += ["permutation", "lime"]
    return found
