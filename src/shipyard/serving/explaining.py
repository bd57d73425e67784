"""The explain path: one request scored once and explained, logged as a prediction is.

Every transport's explain (`/v1/models/{name}/explain`, KServe's `:explain`, the OIP's
`/v2/models/{name}/explain`, gRPC `ModelInfer` with `explain: true`) decodes its request as
predict does and calls `explain_request`. It routes to a lane as predict does (a deployment's arm,
by key or version), reads one value per row, and then leaves the adaptive batcher aside: the rows
are validated and predicted once, by the one scoring step under the policy of a lone request
(`LoadedModel.score` through `explain_rows`, off the event loop, since an explanation costs many
model calls), and the accepted rows explained. The request's rows and predictions go to the
prediction log under its request id (sampled as predict's are; a refusal is logged as one), the
live profiles and the metrics; its explanation goes to the explanation log (`ExplanationLog`)
before it is answered. A shadow arm gets no copy.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np

from shipyard.attribution.base import METHODS
from shipyard.core.batch import Array, Batch
from shipyard.core.contract import Contract, Validation
from shipyard.errors import (
    InputError,
    RequestTooLargeError,
    ServingError,
    ShipyardError,
    UnsupportedExplanationError,
)
from shipyard.explanations.explaining import DEFAULT_TOP, Explanation, explain_rows
from shipyard.explanations.records import ExplanationRecord
from shipyard.registry.loaded import LoadedModel
from shipyard.registry.records import ModelVersion
from shipyard.serving.merging import as_batch, one_value_per_row, violation
from shipyard.serving.payloads import json_kind, probabilities_by_class
from shipyard.serving.served import Answer, Columns, ServedModel
from shipyard.serving.service import ModelService, logged_error

__all__ = ["ASK_KEYS", "ExplainAsk", "Explained", "explain_request", "read_ask"]

log = logging.getLogger("shipyard.serve")

ASK_KEYS = ("method", "output", "top")
"""The keys of an explain request beside its rows (a JSON body's, or the OIP's parameters)."""

MAX_TOP = 1000
"""The most top features a request may ask for per row."""

MAX_MODEL_ROWS = 2_000_000
"""The most rows the model may predict to explain one request (the model-agnostic methods cost
2**d background rows per row for 'exact'): a request past it is refused (413) before any work,
naming how many rows it may carry."""


@dataclass(frozen=True, kw_only=True)
class ExplainAsk:
    """What an explain request asks for beside its rows.

    Args:
        method: one of `shipyard.attribution.base.METHODS` ('auto' picks the best the model has).
        output: only this output (a class label as text, or 'value'); None for every output.
        top: how many top features to name per row.
    """

    method: str = "auto"
    output: str | None = None
    top: int = DEFAULT_TOP


def read_ask(given: Mapping[str, Any], *, where: str) -> ExplainAsk:
    """The explanation options of a request (`method`, `output`, `top`, each optional).

    Args:
        given: the body, or the OIP request's parameters.
        where: where they came from, for messages ('the body', 'the parameters').

    Raises:
        InputError: an option has the wrong JSON type.
        UnsupportedExplanationError: `method` names no explanation method.
    """
    method = given.get("method")
    if method is None:
        method = "auto"
    elif not isinstance(method, str):
        raise InputError(
            f"'method' of {where} is a JSON {json_kind(method)}; expected a string, one of {list(METHODS)}"
        )
    elif method not in METHODS:
        raise UnsupportedExplanationError(
            f"'method' of {where} is {method[:64]!r}, not an explanation method; expected one of "
            f"{list(METHODS)}"
        )
    output = given.get("output")
    if output is not None:
        if isinstance(output, int | str) and not isinstance(output, bool):
            output = str(output)
        else:
            raise InputError(
                f"'output' of {where} is a JSON {json_kind(output)}; expected a class label (a string or an "
                "integer) or 'value' for a regressor, or no 'output' for every output"
            )
    top = given.get("top")
    if top is None:
        top = DEFAULT_TOP
    elif isinstance(top, bool) or not isinstance(top, int) or not 1 <= top <= MAX_TOP:
        shown = (
            f"{top}"
            if isinstance(top, int) and not isinstance(top, bool) and abs(top) < 10**12
            else (
                f"a JSON {json_kind(top)}"
                if not isinstance(top, int) or isinstance(top, bool)
                else "too large"
            )
        )
        raise InputError(
            f"'top' of {where} is {shown}; expected an integer from 1 to {MAX_TOP}: how many top "
            "features to name per row"
        )
    return ExplainAsk(method=method, output=output, top=top)


def check_output(contract: Contract, output: str | None) -> None:
    """Refuse, before any model call, an output the model cannot have.

    Raises:
        UnsupportedExplanationError: a class of a regressor, or a class the classifier has not.
    """
    if output is None:
        return
    if contract.task != "classification" or contract.classes is None:
        if output != "value":
            raise UnsupportedExplanationError(
                f"output {output[:64]!r} was asked for, but this model is a regressor with one output, "
                "'value'; per-class attributions exist only for classifiers (leave 'output' out)"
            )
        return
    classes = [str(c) for c in contract.classes]
    if output not in classes:
        raise UnsupportedExplanationError(
            f"output {output[:64]!r} was asked for; this classifier's outputs are its classes {classes} "
            "(leave 'output' out for every one)"
        )


@dataclass(frozen=True)
class Explained:
    """An explained request: the answer as predict gives it, and its explanation.

    Args:
        answer: request id, the version that answered, the predictions.
        explanation: `Explanation.to_dict(top=..., output=...)`, as answered.
        features: the contract's feature names (the explanation's, when no row was explained).
    """

    answer: Answer
    explanation: dict[str, Any]
    features: tuple[str, ...]


async def explain_request(
    service: ModelService,
    served: ServedModel,
    columns: Columns,
    n_rows: int,
    *,
    ask: ExplainAsk,
    protocol: str,
    request_id: str,
    arrived: float,
    key: str | None = None,
    version: str | None = None,
) -> Explained:
    """Score one request's rows once, explain them, log them; the answer and its explanation.

    Args:
        key: the routing key that keeps a caller on one arm of a deployment (None: random).
        version: the version asked for by name (checked by `route`).

    Raises:
        RequestTooLargeError: more rows than `limits.max_rows`.
        InputError: a column does not hold one value per row.
        ContractViolationError: some rows break the contract (the request is refused whole).
        UnsupportedExplanationError: the model cannot have the method or output asked for.
        ExplanationError: an exact method did not add up.
        PredictionError: the model failed on the rows.
        ServingError: the server failed on this request (a fault of the server).
    """
    if n_rows > service.limits.max_rows:
        raise RequestTooLargeError(
            f"the request has {n_rows} rows; this server takes at most {service.limits.max_rows} "
            "per request (--max-rows); split it, or explain fewer rows at a time"
        )
    lane = served.lane(key, version)
    loaded = lane.loaded
    check_output(loaded.contract, ask.output)
    rows = one_value_per_row(loaded, columns, n_rows)
    sample = service.limits.log_sample
    logged = service.events is not None and (sample >= 1.0 or random.random() < sample)
    log_request = partial(
        _log, service, served, loaded.version, request_id=request_id, protocol=protocol, arrived=arrived
    )
    loop = asyncio.get_running_loop()
    try:
        explanation, body = await loop.run_in_executor(None, _explain, loaded, rows, n_rows, ask)
    except ShipyardError as exc:
        if logged:
            log_request(explanation=None, error=exc)
        raise
    except Exception as exc:
        log.error("explaining request %s to %s failed", request_id, served.name, exc_info=exc)
        raise ServingError(
            f"the server failed while explaining request {request_id} ({type(exc).__name__}); the "
            "fault is the server's, not the request's, and its log has the details"
        ) from None
    predictions = explanation.scored.predictions
    assert predictions is not None  # a lone request is predicted whole or refused
    answer = Answer(request_id, loaded.version, predictions)
    calls = [(explanation.scored.batch, predictions)]
    name, number = served.name, loaded.version.version
    service.metrics.inc("shipyard_predictions", (*served.series, str(number)), predictions.n_rows)
    if service.live is not None:
        service.live.append(name, number, calls)
    if logged:
        log_request(explanation=explanation, error=None)
    store = service.explanations
    if store is not None:
        record = ExplanationRecord(
            request_id=request_id,
            model=served.model,
            version=number,
            protocol=protocol,
            time=time.time(),
            predictions=predictions.values.tolist(),
            probabilities=probabilities_by_class(predictions),
            explanation=body,
        )
        try:
            await loop.run_in_executor(None, lambda: store.write(record, masks=loaded.contract.pii_masks))
        except Exception:  # the caller still gets its explanation; the log says why none is kept
            log.exception("could not keep the explanation of request %s under %s", request_id, store.root)
    return Explained(answer, body, loaded.contract.names)


def _explain(
    loaded: LoadedModel, rows: Mapping[str, Sequence[Any] | Array], n_rows: int, ask: ExplainAsk
) -> tuple[Explanation, dict[str, Any]]:
    """Score and explain one request's rows (in a worker thread)."""
    contract = loaded.contract
    where = str(loaded.version.ref)
    if not all(n in rows for n in contract.names):
        # Missing columns: refused as predict refuses them, naming the columns.
        validation = contract.validate(as_batch(rows, n_rows))
        raise violation(validation.message(where), validation)

    def whole(validation: Validation) -> Array:
        # Predict's policy for a request (`WholeRequests`): refused whole, its violations named.
        if validation.ok:
            return np.arange(validation.batch.n_rows, dtype=np.intp)
        part = validation.part(0, validation.batch.n_rows)
        raise violation(part.message(where), part)

    cost = int(getattr(loaded.explainer(ask.method), "model_rows_per_row", 0))
    if cost and n_rows * cost > MAX_MODEL_ROWS:
        raise RequestTooLargeError(
            f"explaining {n_rows} rows by {ask.method!r} would predict about {n_rows * cost:,} rows "
            f"({cost:,} per row); this server predicts at most {MAX_MODEL_ROWS:,} for one explain "
            f"request: send at most {max(1, MAX_MODEL_ROWS // cost)} rows per request, or use a "
            "cheaper method ('permutation', 'lime') or `shipyard batch run --explain` for many rows"
        )
    batch = Batch.from_columns({n: rows[n] for n in contract.names})
    explanation = explain_rows(loaded, batch, method=ask.method, accept=whole)
    return explanation, explanation.to_dict(top=ask.top, output=ask.output)


def _log(
    service: ModelService,
    served: ServedModel,
    version: ModelVersion,
    *,
    request_id: str,
    protocol: str,
    arrived: float,
    explanation: Explanation | None,
    error: ShipyardError | None,
) -> None:
    """The request in the prediction log, as predict logs it: its rows and outputs, or its refusal."""
    from shipyard.monitoring.events import EventBatch  # there is a log: pyarrow is installed

    assert service.events is not None
    scored = explanation.scored if explanation is not None else None
    features = scored.batch if scored is not None else Batch({}, 0)
    service.events.append(
        EventBatch(
            time=time.time(),
            model=served.model,
            version=version.version,
            request_ids=[request_id],
            rows=[features.n_rows],
            protocols=[protocol],
            latencies_ms=[(time.perf_counter() - arrived) * 1000.0],
            statuses=["ok" if error is None else "rejected"],
            errors=[None if error is None else logged_error(error, version)],
            features=features,
            predictions=scored.predictions if scored is not None else None,
            masked=version.contract.pii_masks,
        )
    )
    service.metrics.set_total("shipyard_events_dropped", (), float(service.events.dropped_rows))
