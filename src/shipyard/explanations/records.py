"""The explanation log: each served explanation kept under its request id, to be read back later.

A server writes one JSON record per explained request, at
`<store>/explanations/<model>/<digest of the request id>.json`, beside the prediction log
(`<store>/events/`), so every worker of a server (and `shipyard explain show`) reads what any of
them wrote. A record is written whole under a temporary name and renamed (`write_whole`), sealed
when encryption at rest is on, and written before the request is answered: once a caller has its
explanation, any worker can read it back. Values of the contract's pii features are masked as the
prediction log masks them (a keyed hash, or nothing); attributions are numbers, never values.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import orjson

from shipyard.core.echo import echo
from shipyard.core.refs import check_name
from shipyard.errors import InputError, NotFoundError
from shipyard.security.masking import Masker
from shipyard.store.artifacts import Cipher, read_sealed, write_sealed
from shipyard.store.objects import open_url
from shipyard.store.permissions import DEFAULT_FILE_MODE, make_folders

__all__ = ["ExplanationLog", "ExplanationRecord", "masked_explanation"]

_MAX_ID = 128  # characters of a request id, as the transports accept them


@dataclass(frozen=True)
class ExplanationRecord:
    """One explained request as the log keeps it.

    Args:
        request_id: the id the request was answered and logged under.
        model: the registered model that answered (a deployment's model, not its name).
        version: the version that answered.
        protocol: the transport ('rest', 'kserve', 'oip-rest', 'oip-grpc').
        time: when it was answered, in seconds since the epoch.
        predictions: one label or value per row.
        probabilities: per row, class name to probability, for classifiers that score.
        explanation: `Explanation.to_dict(...)` as answered, pii values masked.
    """

    request_id: str
    model: str
    version: int
    protocol: str
    time: float
    predictions: list[Any]
    probabilities: list[dict[str, float]] | None
    explanation: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """The record as JSON-safe data (the file's content)."""
        return {
            "request_id": self.request_id,
            "model": self.model,
            "version": self.version,
            "protocol": self.protocol,
            "time": self.time,
            "predictions": self.predictions,
            "probabilities": self.probabilities,
            "explanation": self.explanation,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ExplanationRecord:
        """The record a file holds."""
        return cls(
            request_id=str(data["request_id"]),
            model=str(data["model"]),
            version=int(data["version"]),
            protocol=str(data["protocol"]),
            time=float(data["time"]),
            predictions=list(data["predictions"]),
            probabilities=data.get("probabilities"),
            explanation=dict(data["explanation"]),
        )


def masked_explanation(
    explanation: Mapping[str, Any], masks: Mapping[str, str], masker: Masker | None
) -> dict[str, Any]:
    """`explanation` with the values of pii features masked ('hash': keyed hash, 'redact': None;
    without a masker, every pii value is left out as None). The attributions stay: they are the
    model's numbers, not the caller's values.

    Args:
        explanation: an `Explanation.to_dict(...)`.
        masks: the contract's pii features and how to keep each (`Contract.pii_masks`).
        masker: the server's masker.
    """
    if not masks or "top_features" not in explanation:
        return dict(explanation)

    def masked(entry: Mapping[str, Any]) -> dict[str, Any]:
        mode = masks.get(str(entry.get("feature")))
        if mode is None:
            return dict(entry)
        value = masker.value(entry.get("value")) if masker is not None and mode == "hash" else None
        return {**entry, "value": value}

    rows = [[masked(e) for e in row] for row in explanation["top_features"]]
    return {**explanation, "top_features": rows}


class ExplanationLog:
    """Write and read explanation records under a store.

    Args:
        store_url: the artifact store's URL; records go under `<store_url>/explanations/`.
        cipher: seal each record at rest (its key file beside it); None to write plain JSON.
        masker: masks pii values before anything is written (None: they are left out).
        file_mode: the mode of records on a local disk (owner-only by default); None for the umask.
    """

    def __init__(
        self,
        store_url: str,
        *,
        cipher: Cipher | None = None,
        masker: Masker | None = None,
        file_mode: int | None = DEFAULT_FILE_MODE,
    ) -> None:
        self.fs, root = open_url(store_url)
        self.root = f"{root.rstrip('/')}/explanations"
        self.cipher = cipher
        self.masker = masker
        self.file_mode = file_mode

    def write(self, record: ExplanationRecord, *, masks: Mapping[str, str] | None = None) -> str:
        """Keep `record` (replacing one of the same model and request id); returns its path.

        Args:
            record: what was answered.
            masks: the contract's pii features (`Contract.pii_masks`), masked before writing.
        """
        if masks:
            explanation = masked_explanation(record.explanation, masks, self.masker)
            record = replace(record, explanation=explanation)
        folder = f"{self.root}/{check_name(record.model)}"
        file = _file_name(record.request_id)
        make_folders(self.fs, folder, file_mode=self.file_mode)
        path = f"{folder}/{file}"
        data = orjson.dumps(record.to_dict(), option=orjson.OPT_SERIALIZE_NUMPY)
        write_sealed(
            self.fs,
            path,
            data,
            name=f"explanations/{record.model}/{file}",
            cipher=self.cipher,
            file_mode=self.file_mode,
        )
        return path

    def read(self, request_id: str, *, model: str | None = None) -> ExplanationRecord:
        """The record of `request_id`: of `model` when given, else of whichever model has one.

        Raises:
            InputError: the request id is not one a server would have given.
            NotFoundError: no explanation was logged under that id (and model).
            EncryptionError: the record is sealed and no key (or the wrong one) is configured.
        """
        file = _file_name(request_id)
        if model is not None:
            folders = [check_name(model)]
        else:
            try:
                listed = self.fs.ls(self.root, detail=False)
                folders = sorted(p.rstrip("/").rsplit("/", 1)[-1] for p in listed)
            except FileNotFoundError:
                folders = []
        for folder in folders:
            path = f"{self.root}/{folder}/{file}"
            try:
                blob: bytes = self.fs.cat_file(path)
            except FileNotFoundError:
                continue
            name = f"explanations/{folder}/{file}"
            what = f"the explanation of request {request_id!r}"
            data = read_sealed(self.fs, path, blob, name=name, cipher=self.cipher, what=what)
            return ExplanationRecord.from_dict(orjson.loads(data))
        where = f"model {model!r}" if model is not None else "any model"
        raise NotFoundError(
            f"no explanation of request {echo(request_id)} was logged for {where}; "
            "explanations are kept for requests to .../explain on a server writing its prediction "
            "log to this store (check the request id, the model and SHIPYARD_STORE_URL)"
        )


def _file_name(request_id: str) -> str:
    """The record's file name: a digest of the id, so no id (`../x`, `a/b`) can name a path."""
    if not isinstance(request_id, str) or not 0 < len(request_id) <= _MAX_ID or not request_id.isprintable():
        raise InputError(
            f"the request id is {request_id!r}; expected printable text of 1 to {_MAX_ID} characters"
        )
    return hashlib.sha256(request_id.encode()).hexdigest()[:40] + ".json"
