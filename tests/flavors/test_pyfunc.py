"""Custom Python models (pyfunc): registered and loaded only when trusted, and loaded only when signed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from shipyard import Registry, UntrustedArtifactError
from shipyard.errors import SignatureError
from shipyard.security.signing import SigningKey, new_signing_key


def test_custom_code_needs_trust_and_a_trusted_signature_to_load(
    sqlite_registry: Registry, signing_key: SigningKey, tmp_path: Path, custom_model: Any
) -> None:
    frame = pd.DataFrame({"a": [1.0, 2.0], "y": [1.0, 2.0]})
    with pytest.raises(UntrustedArtifactError, match="trust_pickle=True"):
        sqlite_registry.register(custom_model, name="custom", train_data=frame, target="y")
    sqlite_registry.register(custom_model, name="custom", train_data=frame, target="y", trust_pickle=True)
    with pytest.raises(UntrustedArtifactError, match="runs its code"):
        sqlite_registry.load("custom:1")
    with pytest.raises(SignatureError, match="custom:1 is not signed"):
        sqlite_registry.load("custom:1", trust_pickle=True)
    new_signing_key(tmp_path / "stranger.pem")
    sqlite_registry.signatures.sign("custom:1", SigningKey.from_file(tmp_path / "stranger.pem"))
    with pytest.raises(SignatureError, match="signed only by untrusted key"):
        sqlite_registry.load("custom:1", trust_pickle=True)
    sqlite_registry.signatures.sign("custom:1", signing_key)
    assert sqlite_registry.load("custom:1", trust_pickle=True).predict(frame[["a"]]).values.tolist() == [
        1.0,
        2.0,
    ]
