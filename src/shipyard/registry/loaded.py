"""A loaded version: its contract in front of its predictor, the one predict path's core."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from shipyard.core.batch import Batch, Predictions
from shipyard.core.contract import Contract, Validation
from shipyard.core.dtypes import DType
from shipyard.errors import ContractViolationError, PredictionError, ShipyardError
from shipyard.flavors.base import Predictor

if TYPE_CHECKING:
    from shipyard.registry.registry import ModelVersion

__all__ = ["LoadedModel", "example_row", "warm_up"]


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


def example_row(contract: Contract) -> dict[str, Any]:
    """A row the contract accepts: mid-range numbers, first categories, false, empty text."""
    row: dict[str, Any] = {}
    for f in contract.features:
        if f.categories:
            row[f.name] = f.categories[0]
        elif f.dtype is DType.BOOL:
            row[f.name] = False
        elif f.dtype is DType.STRING:
            row[f.name] = ""
        else:
            lo = f.min if f.min is not None else (f.max if f.max is not None else 0.0)
            hi = f.max if f.max is not None else lo
            value = (lo + hi) / 2.0
            row[f.name] = round(value) if f.dtype is DType.INT else value
    return row


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
