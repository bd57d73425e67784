"""The `shipyard` command: sub-commands, and the one place errors become exit codes.

Exit codes: 0 ok, 1 failed (a clear one-line error), 2 usage. `--debug` shows tracebacks.
"""

from __future__ import annotations

import functools
import os
import signal
import sys
from typing import Annotated, Any

import click
import typer

from shipyard.errors import ShipyardError

__all__ = ["main"]  # and `app`, the whole command, built on first use (`__getattr__`)

_HELP = "Take a trained model from a notebook to production and keep it healthy there."


def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
) -> None:
    """Shipyard's command line."""


def _new_app() -> typer.Typer:
    new = typer.Typer(
        name="shipyard",
        help=_HELP,
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        add_completion=False,
    )
    new.callback()(_root)
    return new


@functools.cache
def _app() -> typer.Typer:
    """The `shipyard` command with every sub-command (each command module imported here)."""
    from shipyard.cli import contract, models
    from shipyard.cli.batch import batch_app
    from shipyard.cli.ci import ci_app
    from shipyard.cli.demo import demo
    from shipyard.cli.evaluate import evaluate, gates_app
    from shipyard.cli.explain import explain_app
    from shipyard.cli.export import export
    from shipyard.cli.k8s import k8s
    from shipyard.cli.monitor import feedback_app, monitor_app
    from shipyard.cli.package import package
    from shipyard.cli.predict import predict
    from shipyard.cli.rollout import deploy_app, rollout_app, server
    from shipyard.cli.schedule import schedule_app, scheduler
    from shipyard.cli.security import audit_app, encryption_app, keys_app, sign, verify
    from shipyard.cli.serve import serve

    app = _new_app()
    app.add_typer(models.app, name="models")
    app.add_typer(contract.app, name="contract")
    app.add_typer(gates_app, name="gates")
    app.add_typer(monitor_app, name="monitor")
    app.add_typer(feedback_app, name="feedback")
    app.add_typer(deploy_app, name="deploy")
    app.add_typer(rollout_app, name="rollout")
    app.add_typer(batch_app, name="batch")
    app.add_typer(schedule_app, name="schedule")
    app.add_typer(keys_app, name="keys")
    app.add_typer(audit_app, name="audit")
    app.add_typer(encryption_app, name="encryption")
    app.add_typer(explain_app, name="explain")
    app.add_typer(ci_app, name="ci")
    app.command()(predict)
    app.command()(evaluate)
    app.command()(export)
    app.command()(demo)
    app.command()(serve)
    app.command()(package)
    app.command()(k8s)
    app.command()(server)
    app.command()(scheduler)
    app.command()(sign)
    app.command()(verify)
    app.command()(version)
    return app


def _serve_only() -> typer.Typer:
    """`shipyard` with the one `serve` command: what a baked container's entrypoint runs
    (`shipyard serve --bundle DIR`), without importing the other commands' modules (about
    0.15 s of its start)."""
    from shipyard.cli.serve import serve

    app = _new_app()
    app.command()(serve)
    app.command()(version)  # two commands keep `serve` a sub-command, as in the full app
    return app


def _run(args: list[str]) -> Any:
    """Run the command `args` names; what click returns (an exit code, or None).

    `serve --bundle ...`, what a baked container runs on every start, skips the other commands'
    modules and, when its options are plainly valid, typer's parser (`cli.serve.parsed`).
    """
    if args[:1] == ["serve"] and any(a == "--bundle" or a.startswith("--bundle=") for a in args):
        from shipyard.cli.serve import parsed, serve

        options = parsed(args[1:])
        if options is not None:
            serve(**options)
            return 0
        app = _serve_only()
    else:
        app = _app()
    return typer.main.get_command(app).main(args, prog_name="shipyard", standalone_mode=False)


def __getattr__(name: str) -> typer.Typer:
    if name == "app":
        return _app()
    raise AttributeError(f"module 'shipyard.cli.app' has no attribute {name!r}")


def version() -> None:
    """Print Shipyard's version."""
    from shipyard import __version__

    typer.echo(__version__)


def main(argv: list[str] | None = None) -> None:
    """Run the CLI and exit with 0 (ok), 1 (failed) or 2 (usage)."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    try:
        # Outside standalone mode click returns an `Exit`'s code instead of raising it.
        try:
            code = _run(args)
        except SystemExit as exc:
            # click (and Typer's copy of it) meets a reader that went away with a silent exit 1,
            # having wrapped stdout to mute it.
            if exc.code == 1 and type(sys.stdout).__name__ == "PacifyFlushWrapper":
                raise BrokenPipeError from None
            raise
        sys.stdout.flush()  # here, where a reader that went away is handled, not at exit
        if isinstance(code, int) and code:
            sys.exit(code)
    except (typer.Exit, click.exceptions.Exit) as exc:
        sys.exit(exc.exit_code)
    except (typer.Abort, click.exceptions.Abort):
        _error("aborted")
        sys.exit(1)
    except ShipyardError as exc:
        if debug:
            raise
        _error(str(exc))
        sys.exit(1)
    except KeyboardInterrupt:
        _error("interrupted")
        sys.exit(130)
    except BrokenPipeError:
        # The reader went away (`shipyard ... | head`): stop quietly, as a command killed by SIGPIPE
        # does, and keep the interpreter's last flush from writing to the closed pipe again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(128 + signal.SIGPIPE)
    except Exception as exc:
        # Typer carries its own copy of click, so usage errors are recognised by their shape.
        show, code = getattr(exc, "show", None), getattr(exc, "exit_code", None)
        if callable(show) and isinstance(code, int):
            show()
            sys.exit(code)
        if debug:
            raise
        _error(f"unexpected {type(exc).__name__}: {exc} (run again with --debug for the traceback)")
        sys.exit(1)
    sys.exit(0)


def _error(message: str) -> None:
    from shipyard.cli.render import error

    error(message)
