"""`shipyard serve`: flags that only work in pairs are refused, naming the pair, before anything starts.

The server the command starts is tested through it in tests/serving (`tests/servers.py:
ServerProcess` runs `shipyard serve`); here are the checks of the command's own flags.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.commands import shipyard_cli


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--tls-cert", "server.pem"], "--tls-cert and --tls-key go together; give both"),
        (["--tls-key", "server.key"], "--tls-cert and --tls-key go together; give both"),
        (["--tls-client-ca", "ca.pem"], "--tls-client-ca needs --tls-cert and --tls-key"),
        (["--jwt-issuer", "https://id.example"], "--jwt-issuer and --jwt-jwks go together"),
        (["--jwt-jwks", "jwks.json"], "--jwt-issuer and --jwt-jwks go together"),
    ],
    ids=["cert-alone", "key-alone", "client-ca-alone", "issuer-alone", "jwks-alone"],
)  # fmt: skip
def test_half_a_pair_of_flags_is_refused_naming_the_pair(home: Path, flags: list[str], message: str) -> None:
    done = shipyard_cli(home, "serve", "fraud:1", "--port", "0", *flags, timeout=60)
    assert done.returncode == 1
    assert message in " ".join(done.stderr.split())
    assert "Traceback" not in done.stderr
