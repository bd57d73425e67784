"""`shipyard.Client`: predict with a Shipyard server over HTTP (our API) or gRPC (the OIP).

    with shipyard.Client("http://127.0.0.1:8000") as client:
        answer = client.predict("fraud", [{"age": 41, "income": 5200, "country": "DE"}])
        answer.predictions, answer.probabilities, answer.version, answer.request_id

Errors come back as the same `ShipyardError` classes the server raised, read from the `type` its
error body names (`ShipyardError.for_type_name`; the status decides only when no type came): a
contract violation is a `ContractViolationError` carrying every violation, an unknown model an
`UnknownModelError`, a refusal for sending too fast a `RateLimitedError` with its `retry_after`.
Over gRPC, where the status is all there is, RESOURCE_EXHAUSTED with a `retry-after` trailer is the
rate limit, and without one a request over the server's size limit.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from shipyard.core.batch import Batch
from shipyard.core.contract import Violation
from shipyard.errors import (
    ContractViolationError,
    InputError,
    RateLimitedError,
    ServingError,
    ShipyardError,
)
from shipyard.serving.client_tensors import infer_request, read_tensors
from shipyard.serving.wire import GRPC_CODES, GRPC_SERVICE, HTTP_STATUSES, RETRY_AFTER_KEY, VIOLATIONS_KEY

__all__ = ["Client", "ServedExplanation", "ServedPrediction"]

# For answers whose body names no Shipyard error type (a proxy's, an unknown path's): the first
# class the server's table lists with the status.
_BY_STATUS: dict[int, type[ShipyardError]] = {status: kind for kind, status in reversed(HTTP_STATUSES)}
_GRPC_METHOD = f"/{GRPC_SERVICE}/"


@dataclass(frozen=True)
class ServedPrediction:
    """What the server answered.

    Args:
        model: the model's name.
        version: the version that answered.
        request_id: the id the server logged the request under.
        predictions: one label or value per row.
        probabilities: per row, class name to probability (classifiers that score), else None.
    """

    model: str
    version: int
    request_id: str
    predictions: list[Any]
    probabilities: list[dict[str, float]] | None


@dataclass(frozen=True)
class ServedExplanation:
    """What the server answered to an explain request.

    Args:
        model: the model's name.
        version: the version that answered.
        request_id: the id the server logged the request and its explanation under.
        predictions: one label or value per row.
        probabilities: per row, class name to probability (classifiers that score), else None.
        explanation: `Explanation.to_dict` as the server answered it: `method`, `space`, `exact`,
            `features`, `outputs`, `attributions` (row, feature, output), `base_values`,
            `output_values`, `additivity_error` and, over HTTP, `top_features` and `mapping`.
    """

    model: str
    version: int
    request_id: str
    predictions: list[Any]
    probabilities: list[dict[str, float]] | None
    explanation: dict[str, Any]

    def attributions(self, row: int, output: str | None = None) -> dict[str, float]:
        """Feature to attribution of one row, for `output` (by default the last output: the
        positive class of a binary classifier, a regressor's value)."""
        e = self.explanation
        outputs = [str(o) for o in e["outputs"]]
        k = outputs.index(str(output)) if output is not None else len(outputs) - 1
        return {f: e["attributions"][row][j][k] for j, f in enumerate(e["features"])}


def _check_options(method: Any, output: Any, top: Any) -> None:
    """The explain options' types, as the server checks them."""
    if not isinstance(method, str):
        raise InputError(f"method is {method!r}; expected a string such as 'auto', 'exact' or 'lime'")
    if output is not None and (isinstance(output, bool) or not isinstance(output, str | int)):
        raise InputError(f"output is {output!r}; expected a class label (a string or an integer) or 'value'")
    if top is not None and (isinstance(top, bool) or not isinstance(top, int) or not 1 <= top <= 1000):
        raise InputError(f"top is {top!r}; expected an integer from 1 to 1000")


class Client:
    """A connection to one Shipyard server.

    Args:
        url: `http(s)://host:port` (our REST API) or `grpc(s)://host:port` (the OIP over gRPC,
            `grpcs` over TLS).
        timeout: seconds to wait for an answer.
        api_key: the API key (or a JWT) sent with every call, for a server with `--auth required`.
        ca: a PEM file of the CA that signed the server's certificate, when it is not a public one.
        client_cert: (certificate, key) PEM files for a server that requires mutual TLS.
    """

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 30.0,
        api_key: str | None = None,
        ca: str | os.PathLike[str] | None = None,
        client_cert: tuple[str | os.PathLike[str], str | os.PathLike[str]] | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        scheme = self.url.split("://", 1)[0].lower()
        if scheme not in ("http", "https", "grpc", "grpcs"):
            raise ServingError(
                f"the server URL is {url!r}; expected http(s)://host:port or grpc(s)://host:port"
            )
        self.scheme = "grpc" if scheme.startswith("grpc") else scheme
        self._auth: tuple[tuple[str, str], ...] = (("authorization", f"Bearer {api_key}"),) if api_key else ()
        self._http: Any = None
        self._channel: Any = None
        if self.scheme == "grpc":
            import grpc

            target = self.url.split("://", 1)[1]
            if scheme == "grpcs":
                root = None if ca is None else Path(ca).read_bytes()
                pair = (
                    (None, None) if client_cert is None else tuple(Path(p).read_bytes() for p in client_cert)
                )
                credentials = grpc.ssl_channel_credentials(root, pair[1], pair[0])
                self._channel = grpc.secure_channel(target, credentials)
            else:
                self._channel = grpc.insecure_channel(target)
        else:
            import ssl

            import httpx

            verify: Any = True
            if ca is not None or client_cert is not None:
                verify = ssl.create_default_context(cafile=None if ca is None else str(ca))
                if client_cert is not None:
                    verify.load_cert_chain(str(client_cert[0]), str(client_cert[1]))
            self._http = httpx.Client(
                base_url=self.url, timeout=timeout, verify=verify, headers=dict(self._auth)
            )

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection."""
        if self._http is not None:
            self._http.close()
        if self._channel is not None:
            self._channel.close()

    def predict(
        self, model: str, rows: Any, *, request_id: str | None = None, key: str | None = None
    ) -> ServedPrediction:
        """Predict `rows` (row objects, a DataFrame or a mapping of columns) with `model`.

        Args:
            model: the model's name, or the deployment's.
            rows: what to predict.
            request_id: the id to log the request under (labels join by it later).
            key: a deployment's routing key (`X-Shipyard-Key`): the same key lands on the same arm
                on every replica.

        Raises:
            ContractViolationError: some row breaks the contract; every violation is attached.
            ShipyardError: the server refused the request for another reason.
        """
        if self.scheme == "grpc":
            return self._predict_grpc(model, rows, request_id, key)
        body = self._post(f"/v1/models/{model}/predict", self._payload(rows), request_id, key)
        return ServedPrediction(
            model=body["model"],
            version=int(body["version"]),
            request_id=body["request_id"],
            predictions=body["predictions"],
            probabilities=body.get("probabilities"),
        )

    def explain(
        self,
        model: str,
        rows: Any,
        *,
        method: str = "auto",
        output: str | int | None = None,
        top: int | None = None,
        request_id: str | None = None,
        key: str | None = None,
    ) -> ServedExplanation:
        """Predict `rows` with `model` and explain each prediction (scored once, as `predict`).

        Args:
            model: the model's name, or the deployment's.
            rows: what to explain (row objects, a DataFrame or a mapping of columns).
            method: 'auto' (the best the model has), 'tree_shap', 'linear', 'exact',
                'permutation' or 'lime'.
            output: only this output (a class label, or 'value'); None for every output.
            top: how many top features to name per row (the server's default when None).
            request_id: the id to log the request and its explanation under.
            key: a deployment's routing key.

        Raises:
            ContractViolationError: some row breaks the contract; every violation is attached.
            UnsupportedExplanationError: the model cannot have the method or output asked for.
            ExplanationError: an exact method did not add up on the server.
            InputError: `method`, `output` or `top` is not of its type (checked here, for both
                protocols alike).
            ShipyardError: the server refused the request for another reason.
        """
        _check_options(method, output, top)
        if self.scheme == "grpc":
            return self._explain_grpc(
                model, rows, method=method, output=output, top=top, request_id=request_id, key=key
            )
        payload = self._payload(rows)
        payload["method"] = method
        if output is not None:
            payload["output"] = output
        if top is not None:
            payload["top"] = top
        body = self._post(f"/v1/models/{model}/explain", payload, request_id, key)
        return ServedExplanation(
            model=body["model"],
            version=int(body["version"]),
            request_id=body["request_id"],
            predictions=body["predictions"],
            probabilities=body.get("probabilities"),
            explanation=body["explanation"],
        )

    def explanation(self, model: str, request_id: str) -> dict[str, Any]:
        """An explanation the server served before, as its explanation log keeps it (HTTP only).

        Raises:
            NotFoundError: none was kept under that request id.
        """
        if self.scheme == "grpc":
            raise ServingError("reading explanations needs the HTTP API; connect with http://host:port")
        if not request_id or "/" in request_id or request_id in (".", ".."):
            raise InputError(
                f"the request id is {request_id!r}; expected the id a server answered with (no '/')"
            )
        response = self._http.get(
            f"/v1/models/{quote(model, safe='')}/explanations/{quote(request_id, safe='')}"
        )
        body = _json(response)
        if response.status_code != 200:
            raise _http_error(response.status_code, body, response.headers.get(RETRY_AFTER_KEY))
        record: dict[str, Any] = body
        return record

    def _payload(self, rows: Any) -> dict[str, Any]:
        if isinstance(rows, Sequence) and not isinstance(rows, str | bytes):
            return {"instances": [_json_row(row, i) for i, row in enumerate(rows)]}
        batch = Batch.coerce(rows)
        return {"inputs": {n: _json_column(c, n) for n, c in batch.columns.items()}}

    def _post(
        self, path: str, payload: dict[str, Any], request_id: str | None, key: str | None
    ) -> dict[str, Any]:
        headers = {"content-type": "application/json"}
        if request_id:
            headers["x-request-id"] = request_id
        if key is not None:
            headers["x-shipyard-key"] = key
        response = self._http.post(path, content=json.dumps(payload, allow_nan=False), headers=headers)
        body = _json(response)
        if response.status_code != 200:
            raise _http_error(response.status_code, body, response.headers.get(RETRY_AFTER_KEY))
        answer: dict[str, Any] = body
        return answer

    def ready(self) -> bool:
        """True when the server's models are loaded and warmed up."""
        if self.scheme == "grpc":
            from shipyard.serving import oip_v2_pb2 as pb

            return bool(self._call("ServerReady", pb.ServerReadyRequest(), pb.ServerReadyResponse).ready)
        return bool(self._http.get("/readyz").status_code == 200)

    def models(self) -> list[dict[str, Any]]:
        """The served models: name, reference, version, flavor, contract (HTTP only)."""
        if self.scheme == "grpc":
            raise ServingError("listing models needs the HTTP API; connect with http://host:port")
        response = self._http.get("/v1/models")
        body = _json(response)
        if response.status_code != 200:
            raise _http_error(response.status_code, body, response.headers.get(RETRY_AFTER_KEY))
        models: list[dict[str, Any]] = body["models"]
        return models

    # -- gRPC -------------------------------------------------------------------------------------
    def _call(
        self, method: str, request: Any, response_type: Any, metadata: tuple[tuple[str, str], ...] = ()
    ) -> Any:
        import grpc

        call = self._channel.unary_unary(
            _GRPC_METHOD + method,
            request_serializer=type(request).SerializeToString,
            response_deserializer=response_type.FromString,
        )
        try:
            return call(request, timeout=self.timeout, metadata=(*self._auth, *metadata) or None)
        except grpc.RpcError as exc:
            raise _grpc_error(exc) from None

    def _predict_grpc(
        self, model: str, rows: Any, request_id: str | None, key: str | None
    ) -> ServedPrediction:
        from shipyard.serving import oip_v2_pb2 as pb

        request = infer_request(model, rows, request_id)
        metadata = (("x-shipyard-key", key),) if key is not None else ()
        response = self._call("ModelInfer", request, pb.ModelInferResponse, metadata)
        predictions, probabilities, _ = read_tensors(response)
        return ServedPrediction(
            model=response.model_name,
            version=int(response.model_version),
            request_id=response.id,
            predictions=predictions,
            probabilities=probabilities,
        )

    def _explain_grpc(
        self,
        model: str,
        rows: Any,
        *,
        method: str,
        output: str | int | None,
        top: int | None,
        request_id: str | None,
        key: str | None,
    ) -> ServedExplanation:
        from shipyard.serving import oip_v2_pb2 as pb

        request = infer_request(model, rows, request_id)
        request.parameters["explain"].bool_param = True
        request.parameters["method"].string_param = method
        if output is not None:
            request.parameters["output"].string_param = str(output)
        if top is not None:
            request.parameters["top"].int64_param = top
        metadata = (("x-shipyard-key", key),) if key is not None else ()
        response = self._call("ModelInfer", request, pb.ModelInferResponse, metadata)
        predictions, probabilities, tensors = read_tensors(response)
        params = {k: v.string_param for k, v in response.parameters.items()}
        features, outputs = json.loads(params["features"]), json.loads(params["outputs"])
        n, f, k = len(predictions), len(features), len(outputs)
        explanation = {
            "method": params["method"],
            "space": params["space"],
            "exact": params["exact"] == "true",
            "features": features,
            "outputs": outputs,
            "attributions": tensors["attributions"].reshape(n, f, k).tolist(),
            "base_values": tensors["base_values"].reshape(n, k).tolist(),
            "output_values": tensors["output_values"].reshape(n, k).tolist(),
            "additivity_error": tensors["additivity_error"].tolist(),
        }
        return ServedExplanation(
            model=response.model_name,
            version=int(response.model_version),
            request_id=response.id,
            predictions=predictions,
            probabilities=probabilities,
            explanation=explanation,
        )


def _json_value(value: Any, row: int, feature: str) -> Any:
    """A value as JSON has it: a missing one (NaN, None, pandas' NA) is null, numpy's are Python's.

    Raises:
        InputError: an infinity, which JSON cannot carry.
    """
    if value is None:
        return None
    if hasattr(value, "item") and type(value).__module__ == "numpy":
        value = value.item()
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if math.isinf(value):
            raise InputError(
                f"feature {feature!r} of row {row} is {value}; JSON has no infinity, so it cannot be sent "
                "over HTTP: send a finite number, None for a missing value, or use grpc://"
            )
        return value
    if type(value).__name__ in ("NAType", "NaTType"):  # pandas' missing markers
        return None
    return value


def _json_row(row: Any, i: int) -> Any:
    """One row of `instances`, JSON-ready (row objects and value lists alike)."""
    if isinstance(row, Mapping):
        return {k: _json_value(v, i, str(k)) for k, v in row.items()}
    if isinstance(row, Sequence) and not isinstance(row, str | bytes):
        return [_json_value(v, i, f"#{j}") for j, v in enumerate(row)]
    return _json_value(row, i, "#0")


def _json_column(column: Any, name: str) -> list[Any]:
    """One column of `inputs`, JSON-ready."""
    return [_json_value(v, i, name) for i, v in enumerate(column.tolist())]


def _json(response: Any) -> Any:
    try:
        return response.json()
    except ValueError:
        raise ServingError(
            f"the server answered {response.status_code} with a body that is not JSON: "
            f"{response.text[:200]!r}"
        ) from None


def _http_error(status: int, body: Mapping[str, Any], retry_after: str | None) -> ShipyardError:
    """The error an HTTP answer reports: the class its body's `type` names, else the status's."""
    error = body.get("error")
    details: Mapping[str, Any] = error if isinstance(error, Mapping) else {}
    message = details.get("message", error)
    kind_name = details.get("type")
    named = ShipyardError.for_type_name(kind_name) if isinstance(kind_name, str) else None
    kind = named or _BY_STATUS.get(status, ServingError)
    if issubclass(kind, ContractViolationError):
        violations = [
            Violation(v["row"], v["feature"], v["value"], v["reason"]) for v in details.get("violations", [])
        ]
        return kind(str(message), violations)
    if issubclass(kind, RateLimitedError):
        return kind(f"{message} (HTTP {status})", retry_after=_seconds(retry_after))
    return kind(f"{message} (HTTP {status})")


def _seconds(retry_after: str | None) -> float:
    """A `retry-after` value in seconds; 0 when none came or it is not a number."""
    try:
        return float(retry_after) if retry_after is not None else 0.0
    except ValueError:
        return 0.0


def _grpc_error(exc: Any) -> ShipyardError:
    import grpc

    code, details = exc.code(), exc.details()
    trailer = dict(exc.trailing_metadata() or ())
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        if VIOLATIONS_KEY in trailer:
            violations = [
                Violation(v["row"], v["feature"], v["value"], v["reason"])
                for v in json.loads(trailer[VIOLATIONS_KEY])
            ]
            return ContractViolationError(details, violations)
        return InputError(details)
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED and RETRY_AFTER_KEY in trailer:
        # The server's rate limit: it alone says when to come back (a size limit has no later).
        return RateLimitedError(
            f"{details} (gRPC {code.name})", retry_after=_seconds(str(trailer[RETRY_AFTER_KEY]))
        )
    kinds = {grpc.StatusCode[name]: kind for kind, name in GRPC_CODES}  # the last class of each code
    return kinds.get(code, ServingError)(f"{details} (gRPC {code.name})")
