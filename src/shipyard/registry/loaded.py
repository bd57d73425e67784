"""A loaded version: its contract in front of its predictor, the one predict path's core."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from shipyard.core.batch import Batch, Predictions
from shipyard.core.contract import Contract, Validation
from shipyard.errors import PredictionError, ShipyardError
from shipyard.flavors.base import Predictor

if TYPE_CHECKING:
    from shipyard.registry.registry import ModelVersion

__all__ = ["LoadedModel"]


@dataclass(frozen=True)
class LoadedModel:
    """A registered version ready to predict: validate by the contract, then predict.

    Args:
        version: the registry's record of the version.
        predictor: the flavor's predictor.
    """

    version: ModelVersion
    predictor: Predictor

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

    def predict(self, data: Any) -> Predictions:
        """Validate `data` by the contract and predict; the request is rejected whole or served whole.

        Raises:
            ContractViolationError: some row breaks the contract; every violation is listed.
            PredictionError: the model failed on valid input.
        """
        validation = self.validate(data)
        validation.raise_if_invalid(str(self.version.ref))
        return self.predict_valid(validation.batch)

    def predict_valid(self, batch: Batch) -> Predictions:
        """Predict a batch that already passed the contract.

        Raises:
            PredictionError: the model failed.
        """
        try:
            return self.predictor.predict(batch)
        except ShipyardError:
            raise
        except Exception as exc:
            raise PredictionError(
                f"{self.version.ref} failed to predict {batch.n_rows} row(s): {exc!r}"
            ) from exc
