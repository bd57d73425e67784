"""Every error Shipyard raises, one root and one base per area.

Transports map these to status codes in their own tables; no exception here carries one. An error
travels between processes by its type name (`RateLimitedError.type_name()` is `rate_limited`), and
`ShipyardError.for_type_name` reads that name back.

An error gathers context as it passes up, as httpx attaches the request to its errors: a layer that
knows where the error happened (the model, version and rows a flavor was predicting) adds it with
`add_context`, and `str()` names it after the message. A fact already there is kept, so an error
that passes the same layer twice is not described twice.

    ShipyardError
    ├── ConfigError                  a setting in the environment or a file is wrong
    ├── RefError                     a model reference or name is malformed
    ├── RegistryError
    │   ├── NotFoundError            no such model, version or alias
    │   └── ConflictError            the change contradicts the registry's state
    ├── StoreError
    │   ├── ArtifactIntegrityError   an artifact's bytes do not match their digest
    │   └── StoreUnavailableError    the metadata store is locked or unreachable
    ├── FlavorError
    │   ├── UnknownFlavorError       no flavor of that name, or none accepts the model
    │   ├── MissingDependencyError   the flavor's framework is not installed
    │   └── UntrustedArtifactError   loading would run code nobody said to trust
    ├── ContractError
    │   ├── ContractViolationError   input breaks the contract; carries every violation
    │   └── InputError               an input file or payload cannot be read as rows
    ├── ProfileError                 profiles cannot be built or combined as asked
    ├── PredictionError              the model itself failed on valid input
    ├── EvaluationError              a version cannot be evaluated on the data given
    │   ├── PolicyError              a gates policy is malformed or names an unknown metric
    │   └── GateError                a protected alias may not move: no passing gate result
    ├── MonitoringError              drift, performance or alerts cannot be computed as asked
    │   ├── MonitorConfigError       drift thresholds or alert rules are malformed
    │   └── FeedbackError            labels cannot be read, matched or stored
    ├── BatchError                   a batch job cannot run, or failed
    │   └── UnresumableJobError      the job can never succeed as started (its input changed)
    ├── RolloutError                 a deployment or rollout cannot be made or changed as asked
    │   ├── DeploymentNotFoundError  no deployment of that name
    │   └── RolloutConflictError     the change contradicts the rollout's state (one already runs)
    ├── ServingError
    │   ├── UnknownModelError        the server serves no such model or version
    │   ├── NotReadyError            the model is still loading or warming up
    │   ├── RequestTooLargeError     the body or the row count is over the server's limit
    │   └── UnsupportedMediaError    the body's content type is not one the endpoint reads
    └── SecurityError
        ├── AuthenticationError      no credentials, or a key or token that is unknown, expired,
        │                            revoked or forged
        ├── PermissionDeniedError    the caller's role or model scope does not allow the action
        ├── RateLimitedError         the caller sent more requests than its rate allows
        ├── EncryptionError          an encrypted artifact cannot be read with the key given
        └── SignatureError           a version's signature is missing, unknown or does not verify
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Self

if TYPE_CHECKING:
    from shipyard.core.contract import Violation

__all__ = [
    "ArtifactIntegrityError",
    "AuthenticationError",
    "BatchError",
    "ConfigError",
    "ConflictError",
    "ContractError",
    "ContractViolationError",
    "DeploymentNotFoundError",
    "EncryptionError",
    "EvaluationError",
    "ExplanationError",
    "ExportError",
    "FeedbackError",
    "FlavorError",
    "GateError",
    "InputError",
    "MissingDependencyError",
    "MonitorConfigError",
    "MonitoringError",
    "NotFoundError",
    "NotReadyError",
    "ParityError",
    "PermissionDeniedError",
    "PolicyError",
    "PredictionError",
    "ProfileError",
    "RateLimitedError",
    "RefError",
    "RegistryError",
    "RequestTooLargeError",
    "RolloutConflictError",
    "RolloutError",
    "SecurityError",
    "ServingError",
    "ShipyardError",
    "SignatureError",
    "StoreError",
    "StoreUnavailableError",
    "UnknownFlavorError",
    "UnknownModelError",
    "UnresumableJobError",
    "UnsupportedExplanationError",
    "UnsupportedExportError",
    "UnsupportedMediaError",
    "UntrustedArtifactError",
]


class ShipyardError(Exception):
    """The root of every error Shipyard raises on purpose.

    Attributes:
        context: facts added as the error passed up (`model`, `version`, `rows`, ...), in the order
            they were added; empty until a layer adds one.
    """

    context: Mapping[str, Any] = MappingProxyType({})

    def add_context(self, **facts: Any) -> Self:
        """Record where the error passed; facts it already has keep their values.

        Args:
            facts: what the layer knows, e.g. `model='credit', version=3, rows=500`.

        Returns:
            The error itself, to re-raise.
        """
        merged = dict(self.context)
        for key, value in facts.items():
            merged.setdefault(key, value)
        self.context = merged
        return self

    @classmethod
    def type_name(cls) -> str:
        """The name the error travels under in a response body: `RateLimitedError` is `rate_limited`."""
        name = cls.__name__.removesuffix("Error")
        return "".join("_" + c.lower() if c.isupper() else c for c in name).lstrip("_")

    @classmethod
    def for_type_name(cls, name: str) -> type[ShipyardError] | None:
        """The class of this module, this one or below it, that travels under `name`, if any.

        Args:
            name: a type name from a response body, e.g. `rate_limited`.
        """
        kinds: list[type[ShipyardError]] = [cls]
        while kinds:
            kind = kinds.pop()
            if kind.__module__ == __name__ and kind.type_name() == name:
                return kind
            kinds.extend(kind.__subclasses__())
        return None

    def __str__(self) -> str:
        message = super().__str__()
        if not self.context:
            return message
        facts = ", ".join(f"{key}={value!r}" for key, value in self.context.items())
        return f"{message} ({facts})"


class ConfigError(ShipyardError):
    """A setting is missing or malformed."""


class RefError(ShipyardError):
    """A model reference or name is malformed."""


class RegistryError(ShipyardError):
    """A registry operation cannot be carried out."""


class NotFoundError(RegistryError):
    """No model, version or alias answers to the reference."""


class ConflictError(RegistryError):
    """The change contradicts the registry's current state."""


class StoreError(ShipyardError):
    """The metadata or artifact store failed."""


class ArtifactIntegrityError(StoreError):
    """An artifact's bytes do not hash to the digest it was stored under."""


class StoreUnavailableError(StoreError):
    """The metadata store is locked, unreachable or refused the connection."""


class FlavorError(ShipyardError):
    """A model cannot be saved or loaded by its flavor."""


class UnknownFlavorError(FlavorError):
    """No flavor has that name, or no flavor accepts the object."""


class MissingDependencyError(FlavorError):
    """The framework a flavor needs is not installed."""


class UntrustedArtifactError(FlavorError):
    """Loading the artifact would execute code or types nobody declared trusted."""


class ContractError(ShipyardError):
    """A contract is malformed, or input does not satisfy it."""


class InputError(ContractError):
    """An input file or payload cannot be read as rows at all."""


class ContractViolationError(ContractError):
    """Input breaks the contract; `violations` lists every one of them.

    Args:
        message: the summary line, followed by the first violations.
        violations: every violation found, with row, feature, value and reason.
    """

    def __init__(self, message: str, violations: Sequence[Violation] = ()) -> None:
        super().__init__(message)
        self.violations: tuple[Violation, ...] = tuple(violations)


class ProfileError(ShipyardError):
    """Profiles cannot be built, read or merged as asked (e.g. different bin edges)."""


class PredictionError(ShipyardError):
    """The model raised while predicting on input that passed its contract."""


class ExplanationError(ShipyardError):
    """An explainer could not answer exactly: its attributions do not add up to the model's output
    within the tolerance, or the model gave it what it cannot read."""


class UnsupportedExplanationError(ExplanationError):
    """The explanation asked for is not one this model can have (per-class attributions of a
    regressor, LIME without probabilities, exact values over too many features); the message
    names what is possible."""


class EvaluationError(ShipyardError):
    """A version cannot be evaluated on the data given (no target, unseen labels, no rows)."""


class PolicyError(EvaluationError):
    """A gates policy is malformed or names a metric no evaluation has; the message names the line."""


class GateError(EvaluationError):
    """A protected alias may not move to the version: it has no passing gate result for it."""


class MonitoringError(ShipyardError):
    """Drift, performance or alerts cannot be computed as asked."""


class MonitorConfigError(MonitoringError):
    """Drift thresholds or alert rules are malformed."""


class FeedbackError(MonitoringError):
    """Labels cannot be read, matched to predictions or stored; `refused` lists every label refused.

    Args:
        message: the summary, naming the first labels refused and why.
        refused: each refused label as data (where, request_id, row, label, reason, expected).
    """

    def __init__(self, message: str, refused: Sequence[Mapping[str, Any]] = ()) -> None:
        super().__init__(message)
        self.refused: tuple[Mapping[str, Any], ...] = tuple(refused)


class ServingError(ShipyardError):
    """A request to a model server cannot be served."""


class UnknownModelError(ServingError):
    """The server serves no model or version by that name."""


class NotReadyError(ServingError):
    """The model is still loading or warming up; try again shortly."""


class RequestTooLargeError(ServingError):
    """The request body or its row count is over the server's limit."""


class UnsupportedMediaError(ServingError):
    """The request's content type is not one the endpoint reads."""


class BatchError(ShipyardError):
    """A batch job cannot run, or failed."""


class UnresumableJobError(BatchError):
    """A batch job can never succeed as it was started (its input changed, it names a column the
    input lacks): resuming it would fail the same way; a new job is needed."""


class ExportError(ShipyardError):
    """A version could not be exported for the edge (ONNX, C)."""


class UnsupportedExportError(ExportError):
    """The model, or a step of its pipeline, has no converter for the requested target; the
    message names the step and what would work."""


class ParityError(ExportError):
    """The exported model does not answer as the version does: it is refused, nothing is written.

    Args:
        message: the verdict, then the rows and features that differ.
        report: the parity report as data (`ParityReport.to_dict()`), empty when not given.
    """

    def __init__(self, message: str, report: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.report: Mapping[str, Any] = dict(report or {})


class RolloutError(ShipyardError):
    """A deployment or rollout cannot be made or changed as asked."""


class DeploymentNotFoundError(RolloutError):
    """No deployment has that name."""


class RolloutConflictError(RolloutError):
    """The change contradicts the state of the deployment or its rollout."""


class SecurityError(ShipyardError):
    """Who is calling, or what they may do, or the keys that protect artifacts, is in question."""


class AuthenticationError(SecurityError):
    """No credentials came, or the key or token is unknown, expired, revoked or forged."""


class PermissionDeniedError(SecurityError):
    """The caller is known, but its role or model scope does not allow the action."""


class RateLimitedError(SecurityError):
    """The caller sent more requests than its rate allows.

    Args:
        message: what happened and the rate.
        retry_after: seconds until a request would be accepted again.
    """

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class EncryptionError(SecurityError):
    """An encrypted artifact cannot be read: no key, the wrong key, or tampered bytes."""


class SignatureError(SecurityError):
    """A version's signature is missing, made by an untrusted key, or does not match the version."""
