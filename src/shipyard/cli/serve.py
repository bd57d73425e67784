"""`shipyard serve`: answer REST, MLflow, OIP REST and OIP gRPC requests for registered models."""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from shipyard.config import Settings

__all__ = ["serve"]


def serve(
    refs: Annotated[
        list[str] | None, typer.Argument(help="Models to serve: NAME@ALIAS, NAME:VERSION or NAME.")
    ] = None,
    deployment: Annotated[
        str | None,
        typer.Option(help="Serve this deployment's arms (see 'shipyard deploy') instead of models."),
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
    trust_code: Annotated[bool, typer.Option(help="Allow custom Python models.")] = False,
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
) -> None:
    """Serve models over REST and gRPC until SIGTERM; see docs/serving.md."""
    from shipyard.serving.server import ServeOptions
    from shipyard.serving.server import serve as run
    from shipyard.serving.service import Limits

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    options = ServeOptions(
        refs=tuple(refs or ()),
        deployment=deployment,
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
        reload_interval=reload_interval,
        model_threads=model_threads,
        log_events=not no_log,
        live_profiles=not no_profile,
        trust_code=trust_code,
    )
    run(Settings.from_env(), options, on_ready=typer.echo)
