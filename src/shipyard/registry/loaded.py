"""A loaded version: its contract in front of its predictor, the one predict path's core."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from shipyard.core.batch import Batch, Predictions
from shipyard.core.contract import Contract, Validation, example_row
from shipyard.errors import ContractViolationError, PredictionError, ShipyardError
from shipyard.flavors import flavor_named, unpack
from shipyard.flavors.base import LoadOptions, Predictor

if TYPE_CHECKING:  # the engines are imported when a version is first explained, not when a server starts
    from shipyard.attribution.base import Attributions, Explainer
    from shipyard.registry.records import ModelVersion

__all__ = ["Accept", "Explained", "LoadedModel", "Scored", "example_row", "load_artifact", "warm_up"]

Rows = npt.NDArray[np.intp]
_BUILDING = threading.Lock()
Accept = Callable[[Validation], Rows]
"""A rejection policy: from a validation, the rows (ascending indices) to predict."""


def passed(validation: Validation) -> Rows:
    """Quarantine: predict every row that passed the contract; the rest are left out."""
    return validation.accepted_rows


@dataclass(frozen=True)
class Scored:
    """What the one scoring step gives back.

    Attributes:
        validation: the contract's verdict on every row given (with the rows as validated).
        accepted: the indices of the rows that were predicted, ascending.
        batch: those rows, as validated (typed and in the contract's order).
        predictions: their predictions, one per accepted row; None when rows were given and the
            policy accepted none of them (an empty input is predicted: zero predictions).
    """

    validation: Validation
    accepted: Rows
    batch: Batch
    predictions: Predictions | None

    @property
    def whole(self) -> bool:
        """Every row given was predicted."""
        return len(self.accepted) == self.validation.batch.n_rows


@dataclass(frozen=True)
class Explained:
    """What the scoring step gives back when it also explains.

    Attributes:
        scored: the scoring step's result.
        attributions: the explanation of the accepted rows, in their order (checked when the
            method is exact); None when no row was accepted.
    """

    scored: Scored
    attributions: Attributions | None


@dataclass(frozen=True)
class LoadedModel:
    """A registered version ready to predict: validate by the contract, then predict.

    Args:
        version: the registry's record of the version.
        predictor: the flavor's predictor.
        signed: the version's signature by a trusted key was verified when it was loaded.
    """

    version: ModelVersion
    predictor: Predictor
    signed: bool = False
    cache: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    """What is built once per loaded version and kept while it is loaded (its explainers)."""

    @property
    def contract(self) -> Contract:
        """The version's feature contract."""
        return self.version.contract

    @property
    def model(self) -> Any:
        """The framework's own model object."""
        return getattr(self.predictor, "model", self.predictor)

    def validate(self, data: Any) -> Validation:
        """Check rows against the contract without predicting.

        Args:
            data: a DataFrame, Arrow table, list of row objects, mapping of columns or Batch.
        """
        return self.contract.validate(Batch.coerce(data))

    def score(self, data: Any, *, accept: Accept = passed) -> Scored:
        """The one scoring step: validate `data` by the contract, keep the rows `accept` chooses,
        and predict them in one model call.

        Serving, batch, evaluation, robustness and `predict` all score through here; each passes
        its own rejection policy (`accept`): quarantine the rows that fail (the default), reject a
        whole request, or raise.

        Args:
            data: a DataFrame, Arrow table, list of row objects, mapping of columns or Batch.
            accept: from the validation, the rows to predict (ascending indices); it may raise.

        Raises:
            InputError: `data` cannot be read as rows.
            PredictionError: the model failed on the accepted rows; its context names the model,
                version and rows.
            ShipyardError: whatever `accept` raises, and any error of the flavor's, with that context.
        """
        validation = self.validate(data)
        accepted = accept(validation)
        whole = len(accepted) == validation.batch.n_rows
        rows = validation.batch if whole else validation.batch.take(accepted)
        # An empty input still goes to the model, which answers with zero predictions of its shape.
        predictions = self.predict_valid(rows) if whole or len(accepted) else None
        return Scored(validation, accepted, rows, predictions)

    @property
    def background(self) -> Batch | None:
        """The background sample stored at registration, as validated rows; None without one."""
        if "background" not in self.cache:
            from shipyard.attribution.summary import background_of

            self.cache["background"] = background_of(self.contract, self.version.explanation)
        background: Batch | None = self.cache["background"]
        return background

    def explainer(self, method: str = "auto", *, background: Batch | None = None) -> Explainer:
        """The version's explainer for `method` (`shipyard.attribution.choose`), built once and kept
        while the version is loaded.

        Args:
            method: one of `shipyard.attribution.base.METHODS`.
            background: explain against this sample instead of the stored one (not kept).

        Raises:
            UnsupportedExplanationError: the model cannot have `method`; the message names what
                it can.
        """
        if background is not None:
            return self._build_explainer(method, background)
        key = f"explainer:{method}"
        explainer: Explainer | None = self.cache.get(key)
        if explainer is None:
            with _BUILDING:  # a tree model's tables are built once, not by every waiting request
                explainer = self.cache.get(key)
                if explainer is None:
                    explainer = self._build_explainer(method, self.background)
                    self.cache[key] = explainer
        return explainer

    def _build_explainer(self, method: str, background: Batch | None) -> Explainer:
        from shipyard.attribution.choose import explainer_for

        return explainer_for(
            self.predictor,
            names=self.contract.names,
            classes=self._classes,
            frame_input=bool(getattr(self.predictor, "frame_input", False)),
            background=background,
            method=method,
        )

    @property
    def _classes(self) -> tuple[Any, ...] | None:
        return self.contract.classes if self.contract.task == "classification" else None

    def explanation_methods(self) -> list[str]:
        """The explanation methods this version can have, the exact ones first."""
        from shipyard.attribution.choose import possible_methods

        return possible_methods(
            self.predictor,
            names=self.contract.names,
            classes=self._classes,
            frame_input=bool(getattr(self.predictor, "frame_input", False)),
            background=self.background,
        )

    def explain(
        self,
        data: Any,
        *,
        method: str = "auto",
        accept: Accept | None = None,
        background: Batch | None = None,
    ) -> Explained:
        """The scoring step, then the explanation of the rows it predicted.

        Args:
            data: rows, as `score` takes them.
            method: one of `shipyard.attribution.base.METHODS`.
            accept: the rejection policy; by default `strict` (any failing row raises, as
                `predict` does).
            background: explain against this sample instead of the stored one.

        Raises:
            ContractViolationError: a row breaks the contract (with the default policy).
            UnsupportedExplanationError: the model cannot have `method`.
            ExplanationError: an exact method did not add up on some row.
        """
        explainer = self.explainer(method, background=background)
        scored = self.score(data, accept=accept or self.strict)
        if scored.predictions is None:
            return Explained(scored, None)
        attributions = explainer.explain(scored.batch).checked(str(self.version.ref))
        return Explained(scored, attributions)

    def predict(self, data: Any) -> Predictions:
        """Validate `data` by the contract and predict; the request is rejected whole or served whole.

        Raises:
            ContractViolationError: some row breaks the contract; every violation is listed.
            PredictionError: the model failed on valid input.
        """
        predictions = self.score(data, accept=self.strict).predictions
        assert predictions is not None  # every row was accepted, so every row was predicted
        return predictions

    def strict(self, validation: Validation) -> Rows:
        """The rejection policy of `predict`: every row, or `ContractViolationError` naming each
        violation when any row breaks the contract."""
        validation.raise_if_invalid(str(self.version.ref))
        return np.arange(validation.batch.n_rows, dtype=np.intp)

    def predict_valid(self, batch: Batch) -> Predictions:
        """Predict a batch that already passed the contract.

        Any error on the way out names the model, version and number of rows in its `context`.

        Raises:
            PredictionError: the model failed (a framework's own exception is wrapped in one).
            ShipyardError: another error of the flavor's (a missing framework, ...).
        """
        try:
            return self.predictor.predict(batch)
        except ShipyardError as exc:
            exc.add_context(**self._context(batch))
            raise
        except Exception as exc:
            error = PredictionError(f"the {self.version.flavor} model failed to predict: {exc!r}")
            raise error.add_context(**self._context(batch)) from exc

    def _context(self, batch: Batch) -> dict[str, Any]:
        return {"model": self.version.name, "version": self.version.version, "rows": batch.n_rows}


def load_artifact(
    version: ModelVersion, data: bytes, *, trust_pickle: bool = False, signed: bool = False
) -> LoadedModel:
    """Load a version from its record and its artifact's bytes (already checked against its
    digest). `signed` says the caller verified the version's signature (a pyfunc model is
    unpickled only then).

    Raises:
        UntrustedArtifactError: loading would run code or types not trusted.
    """
    saved = unpack(data)
    predictor = flavor_named(saved.flavor).load(saved, LoadOptions(trust_pickle=trust_pickle, signed=signed))
    return LoadedModel(version, predictor, signed=signed)


def warm_up(loaded: LoadedModel) -> Predictions:
    """Predict one `example_row` of the contract, so the first caller pays no first-call costs.

    Raises:
        PredictionError: the model cannot predict a row its contract accepts.
    """
    row = example_row(loaded.contract)
    try:
        return loaded.predict([row])
    except ContractViolationError as exc:
        raise PredictionError(
            f"{loaded.version.ref} rejected its own warm-up row {row}: {exc}; check the contract"
        ) from exc
