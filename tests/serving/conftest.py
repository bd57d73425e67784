"""Fixtures for serving tests: a registered credit model and a real server for it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from servers import ServerProcess
from shipyard import Registry, Settings


@pytest.fixture(scope="module")
def credit_home(tmp_path_factory: pytest.TempPathFactory, credit: pd.DataFrame, credit_pipeline: Any) -> Path:
    """A Shipyard home with the credit model registered as `credit@production` (version 1)."""
    home = tmp_path_factory.mktemp("serving-home")
    with Registry(_unguarded(home), actor="tester") as registry:
        registry.register(
            credit_pipeline, name="credit", train_data=credit, target="default", alias="production"
        )
    return home


@pytest.fixture(scope="module")
def credit_server(credit_home: Path) -> Iterator[ServerProcess]:
    """`shipyard serve credit@production` with small limits, REST and gRPC."""
    server = ServerProcess(
        credit_home, ["credit@production"], "--max-rows", "50", "--max-body-bytes", "100000"
    )
    try:
        yield server.wait_ready()
    finally:
        server.terminate()


def _unguarded(home: Path) -> Settings:
    """Settings without protected aliases: these tests move `production` freely, gates aside."""
    return replace(Settings.for_home(home), protected_aliases=())
