"""Fixtures: moto and SeaweedFS started once per test process, and a fresh `s3://` prefix per test.

Both servers run on 127.0.0.1 on free ports; every test gets a prefix of its own in one bucket,
and the AWS variables pointing at the server under test.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest
from tests.s3.s3servers import ACCESS_KEY, BUCKET, SECRET_KEY, S3Server, seaweedfs_command, use

from servers import free_port
from shipyard.datasets import credit_pipeline, make_credit


@pytest.fixture(scope="session")
def moto_server() -> Iterator[S3Server]:
    """moto's S3 in server mode, on a thread of this process (its objects live in memory)."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield S3Server("moto", f"http://127.0.0.1:{port}").start()
    finally:
        server.stop()


@pytest.fixture(scope="session")
def seaweedfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """SeaweedFS as a process of its own, its data in a temporary folder, one access key."""
    folder = tmp_path_factory.mktemp("seaweedfs")
    (folder / "data").mkdir()
    config = folder / "s3.json"
    identity = {"name": "shipyard", "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}]}
    identity["actions"] = ["Admin", "Read", "Write", "List", "Tagging"]
    config.write_text(json.dumps({"identities": [identity]}))
    command, endpoint = seaweedfs_command(folder / "data", config)
    server = S3Server("seaweedfs", endpoint, command=command, log=folder / "weed.log")
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture(scope="module", params=["moto", "seaweedfs"])
def s3(request: pytest.FixtureRequest) -> S3Server:
    """Each S3 server in turn."""
    server: S3Server = request.getfixturevalue("moto_server" if request.param == "moto" else "seaweedfs")
    return server


@pytest.fixture
def store_url(s3: S3Server, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh `s3://` prefix on the server under test, with the AWS variables set for it."""
    use(s3, monkeypatch)
    return f"s3://{BUCKET}/{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="session")
def small_credit() -> pd.DataFrame:
    """A few credit applications, labelled: enough to register a model on."""
    return make_credit(400, seed=1)


@pytest.fixture(scope="session")
def small_model(small_credit: pd.DataFrame) -> Any:
    """The demo's credit pipeline with a shallow tree for its booster: what these tests need of a
    model is that it registers, loads and predicts, which a tree does in a fraction of the time."""
    from sklearn.tree import DecisionTreeClassifier

    pipeline = credit_pipeline()
    pipeline.steps[-1] = ("boost", DecisionTreeClassifier(max_depth=4, random_state=0))
    return pipeline.fit(small_credit.drop(columns="default"), small_credit["default"])
