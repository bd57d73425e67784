"""Fixtures for security tests: a small PKI (a CA, a server and a client certificate), from tests/pki.py."""

from __future__ import annotations

import pytest

from pki import Pki, make_pki


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A CA with a server certificate for 127.0.0.1 and a client certificate, and a stranger's CA."""
    return make_pki(tmp_path_factory.mktemp("pki"))
