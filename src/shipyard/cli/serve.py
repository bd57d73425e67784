"""`shipyard serve`: answer REST, MLflow, OIP REST and OIP gRPC requests for registered models."""

from __future__ import annotations

import logging
import typing
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from shipyard.cli.options import TrustPickleOpt
from shipyard.config import Settings
from shipyard.errors import ConfigError

if TYPE_CHECKING:
    from shipyard.security.tokens import JwtSettings
    from shipyard.serving.tls import TlsFiles

__all__ = ["parsed", "serve"]


def serve(
    refs: Annotated[
        list[str] | None, typer.Argument(help="Models to serve: NAME@ALIAS, NAME:VERSION or NAME.")
    ] = None,
    deployment: Annotated[
        str | None,
        typer.Option(help="Serve this deployment's arms (see 'shipyard deploy') instead of models."),
    ] = None,
    bundle: Annotated[
        Path | None,
        typer.Option(
            help="Serve the version baked in this bundle folder, with no metadata database "
            "(see docs/deploy.md#bundle)."
        ),
    ] = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="HTTP port (REST, MLflow, OIP REST, metrics).")] = 8000,
    grpc_port: Annotated[int | None, typer.Option(help="gRPC port for the OIP; none by default.")] = None,
    workers: Annotated[int, typer.Option(help="Worker processes sharing the ports.")] = 1,
    max_batch_size: Annotated[int, typer.Option(help="Most rows merged into one model call.")] = 256,
    max_wait_ms: Annotated[
        float, typer.Option(help="Longest a queue may wait for more requests while under load.")
    ] = 5.0,
    max_rows: Annotated[int, typer.Option(help="Most rows one request may carry (413 above).")] = 10_000,
    max_body_bytes: Annotated[int, typer.Option(help="Largest request body (413 above).")] = 16 * 1024 * 1024,
    reload_interval: Annotated[
        float, typer.Option(help="Seconds between checks of the served aliases; a moved alias is swapped in.")
    ] = 10.0,
    keep_alive_timeout: Annotated[
        float, typer.Option(help="Seconds an idle keep-alive connection is kept between requests.")
    ] = 5.0,
    header_timeout: Annotated[
        float, typer.Option(help="Seconds a request's headers may take to arrive (408 after).")
    ] = 10.0,
    body_timeout: Annotated[
        float,
        typer.Option(
            help="Seconds a request's body may take after its headers, before --body-min-rate (408)."
        ),
    ] = 30.0,
    body_min_rate: Annotated[
        float, typer.Option(help="Bytes per second that earn a body one more second (0: none).")
    ] = 64 * 1024,
    max_connections: Annotated[
        int | None,
        typer.Option(
            help="Connections one worker holds; beyond, the longest-idle is closed, or 503 with "
            "Retry-After. Default 1000, or fewer under a low 'ulimit -n'."
        ),
    ] = None,
    log_sample: Annotated[float, typer.Option(help="Share of requests written to the prediction log.")] = 1.0,
    no_log: Annotated[bool, typer.Option("--no-log", help="Write no prediction log.")] = False,
    no_profile: Annotated[
        bool, typer.Option("--no-profile", help="Keep no live traffic profiles (no drift on /metrics).")
    ] = False,
    drift_window: Annotated[
        int, typer.Option(help="Minutes of live traffic the drift on /metrics covers.")
    ] = 15,
    model_threads: Annotated[
        int, typer.Option(help="Threads each worker's model may use (OpenMP, BLAS).")
    ] = 1,
    trust_pickle: TrustPickleOpt = False,
    follow_interval: Annotated[
        float, typer.Option(help="Seconds between checks of the deployment's arms and weights.")
    ] = 2.0,
    no_controller: Annotated[
        bool,
        typer.Option(
            "--no-controller", help="Do not run the rollout controller here (run 'shipyard server')."
        ),
    ] = False,
    shadow_queue: Annotated[
        int, typer.Option(help="Shadow copies waiting at most; more are shed and counted.")
    ] = 1000,
    auth: Annotated[
        str, typer.Option(help="required: every call needs an API key or JWT (health stays open); off.")
    ] = "off",
    rate_limit: Annotated[
        float | None,
        typer.Option(help="Requests per second per caller and worker (429 above); a key's own rate wins."),
    ] = None,
    burst: Annotated[
        float | None, typer.Option(help="Requests a caller may send at once above its rate.")
    ] = None,
    tls_cert: Annotated[
        Path | None, typer.Option(help="PEM certificate: serve HTTPS and gRPC over TLS.")
    ] = None,
    tls_key: Annotated[Path | None, typer.Option(help="PEM private key of --tls-cert.")] = None,
    tls_client_ca: Annotated[
        Path | None, typer.Option(help="PEM CA: clients must present a certificate it signed (mutual TLS).")
    ] = None,
    jwt_issuer: Annotated[str | None, typer.Option(help="Accept JWTs from this issuer (its 'iss').")] = None,
    jwt_jwks: Annotated[
        str | None, typer.Option(help="The issuer's public keys: a JWKS file or https URL.")
    ] = None,
    jwt_audience: Annotated[str | None, typer.Option(help="The 'aud' tokens must carry.")] = None,
    jwt_role_claim: Annotated[str, typer.Option(help="The claim holding the roles.")] = "roles",
    jwt_role_map: Annotated[
        str | None, typer.Option(help="Claim values to roles: 'ml-admins=admin,analysts=reader'.")
    ] = None,
    jwt_models_claim: Annotated[
        str | None, typer.Option(help="A claim listing the model patterns a token is limited to.")
    ] = None,
    require_signature: Annotated[
        bool,
        typer.Option(help="Load only versions signed by a trusted key (SHIPYARD_TRUSTED_KEYS)."),
    ] = False,
) -> None:
    """Serve models over REST and gRPC until SIGTERM; see docs/serving.md."""
    listening = None
    if bundle is not None:  # listen first: connections made while the model loads wait, not fail
        from shipyard.serving.sockets import bind

        listening = bind(host, port)
    from shipyard.serving.connections import ConnectionLimits
    from shipyard.serving.served import Limits
    from shipyard.serving.server import ServeOptions
    from shipyard.serving.server import serve as run

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    options = ServeOptions(
        refs=tuple(refs or ()),
        deployment=deployment,
        bundle=bundle,
        follow_interval=follow_interval,
        controller=not no_controller,
        host=host,
        port=port,
        grpc_port=grpc_port,
        workers=workers,
        limits=Limits(
            max_body_bytes=max_body_bytes,
            drift_minutes=drift_window,
            max_rows=max_rows,
            max_batch_rows=max_batch_size,
            max_wait_ms=max_wait_ms,
            log_sample=log_sample,
            shadow_queue=shadow_queue,
        ),
        connections=ConnectionLimits(
            keep_alive_timeout=keep_alive_timeout,
            header_timeout=header_timeout,
            body_timeout=body_timeout,
            body_min_rate=body_min_rate,
            max_connections=max_connections,
        ),
        reload_interval=reload_interval,
        model_threads=model_threads,
        log_events=not no_log,
        live_profiles=not no_profile,
        trust_pickle=trust_pickle,
        auth=auth,
        rate_limit=rate_limit,
        burst=burst,
        tls=_tls(tls_cert, tls_key, tls_client_ca),
        jwt=_jwt(jwt_issuer, jwt_jwks, jwt_audience, jwt_role_claim, jwt_role_map, jwt_models_claim),
    )
    settings = Settings.from_env()
    if require_signature:
        settings = replace(settings, require_signature=True)
    run(settings, options, on_ready=typer.echo, listening=listening)


def parsed(args: list[str]) -> dict[str, Any] | None:
    """`serve`'s keyword arguments for a command line of its options alone (`--name value`,
    `--name=value`, `--flag`), read from `serve`'s own signature; None for anything else.

    A baked container runs `shipyard serve --bundle DIR ...` on every start, and typer's parser
    builds a pydantic validator for each of serve's options first (about 0.1 s, a third of the
    cold start's allowance over its floor). This reads the same option names, types and defaults
    without it. Anything it does not take as plainly valid (`--help`, a model reference, an
    unknown or repeated option, a value of the wrong type) gives None, and the command line then
    goes through typer, which explains the mistake.
    """
    table = _option_table()
    values: dict[str, Any] = {}
    rest = list(args)
    while rest:
        flag, equals, value = rest.pop(0).partition("=")
        if flag not in table or table[flag][0] in values:
            return None
        name, kind = table[flag]
        if isinstance(kind, bool):
            if equals:
                return None
            values[name] = kind
            continue
        if not equals:
            if not rest:
                return None
            value = rest.pop(0)
        try:
            values[name] = kind(value)
        except ValueError:
            return None
    return values


def _option_table() -> dict[str, tuple[str, Any]]:
    """Each of serve's option flags: the parameter it sets, and its type (or, for a flag, the
    value it sets)."""
    table: dict[str, tuple[str, Any]] = {}
    for name, hint in typing.get_type_hints(serve, include_extras=True).items():
        found = (m for m in getattr(hint, "__metadata__", ()) if isinstance(m, typer.models.OptionInfo))
        info = next(found, None)
        if info is None:
            continue  # the models to serve: an argument, never given with --bundle
        kind = next((t for t in typing.get_args(hint.__origin__) if t is not type(None)), hint.__origin__)
        # In Annotated, typer takes the option's first positional (here `default`) as a flag.
        decls: tuple[str, ...] = (info.default,) if isinstance(info.default, str) else ()
        decls += tuple(info.param_decls or ())
        if kind is bool:
            flags = decls or (f"--{name.replace('_', '-')}", f"--no-{name.replace('_', '-')}")
            table.update({flag: (name, not flag.startswith("--no-") or bool(decls)) for flag in flags})
        else:
            table[decls[0] if decls else f"--{name.replace('_', '-')}"] = (name, kind)
    return table


def _tls(cert: Path | None, key: Path | None, client_ca: Path | None) -> TlsFiles | None:
    from shipyard.serving.tls import TlsFiles

    if cert is None and key is None:
        if client_ca is not None:
            raise ConfigError("--tls-client-ca needs --tls-cert and --tls-key: mutual TLS is TLS first")
        return None
    if cert is None or key is None:
        raise ConfigError("--tls-cert and --tls-key go together; give both")
    return TlsFiles(cert=cert, key=key, client_ca=client_ca).check()


def _jwt(
    issuer: str | None,
    jwks: str | None,
    audience: str | None,
    role_claim: str,
    role_map: str | None,
    models_claim: str | None,
) -> JwtSettings | None:
    from shipyard.security.tokens import JwtSettings, parse_role_map

    if issuer is None and jwks is None:
        return None
    if issuer is None or jwks is None:
        raise ConfigError("--jwt-issuer and --jwt-jwks go together: whose tokens, checked with which keys")
    return JwtSettings(
        issuer=issuer,
        jwks=jwks,
        audience=audience,
        role_claim=role_claim,
        role_map=parse_role_map(role_map),
        models_claim=models_claim,
    )
