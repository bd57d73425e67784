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


def test_the_bundle_fast_path_reads_every_option_as_typer_does() -> None:
    """`serve --bundle` skips typer's parser when its options are plainly valid (`parsed`): each
    of serve's flags reaches it, and each value arrives as typer would convert it."""
    import typer

    from shipyard.cli.app import _serve_only
    from shipyard.cli.serve import _option_table, parsed

    command = typer.main.get_command(_serve_only()).commands["serve"]  # type: ignore[attr-defined]
    flags = {flag for param in command.params for flag in (*param.opts, *param.secondary_opts)}
    assert flags - {"--help", "refs"} == set(_option_table())  # refs: the models, an argument
    args = ["--bundle", "b", "--port=8080", "--model-threads", "2", "--log-sample", "0.5", "--no-log"]
    args += ["--require-signature", "--jwt-audience", "api"]
    context = command.make_context("serve", list(args))
    assert parsed(args) == {k: v for k, v in context.params.items() if k in parsed(args)}
    assert parsed(["--no-require-signature"]) == {"require_signature": False}


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["fraud:1", "--bundle", "b"],
        ["--port", "eighty"],
        ["--port", "1", "--port", "2"],
        ["--port"],
    ],
    ids=["help", "a-model", "wrong-type", "repeated", "no-value"],
)
def test_anything_else_goes_through_typer(args: list[str]) -> None:
    from shipyard.cli.serve import parsed

    assert parsed(args) is None


def test_a_bundle_and_models_together_are_refused(home: Path) -> None:
    done = shipyard_cli(home, "serve", "fraud:1", "--bundle", str(home / "bundle"), "--port", "0", timeout=60)
    assert done.returncode == 1
    assert "serve either the bundle" in done.stderr and "not both" in done.stderr
