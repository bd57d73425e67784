"""`shipyard ci init`: a CI/CD pipeline for GitHub Actions or GitLab CI."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from shipyard.errors import ConfigError

__all__ = ["ci_app"]

ci_app = typer.Typer(
    help="CI/CD pipelines that test, evaluate, gate, package and roll out a version.", no_args_is_help=True
)


@ci_app.command("init")
def ci_init(
    model: Annotated[str, typer.Option(help="The model the pipeline ships.")],
    target: Annotated[str, typer.Option("--target", "-t", help="The label column of the holdout.")],
    github: Annotated[
        bool, typer.Option("--github", help="Write .github/workflows/shipyard.yml (GitHub Actions).")
    ] = False,
    gitlab: Annotated[bool, typer.Option("--gitlab", help="Write .gitlab-ci.yml (GitLab CI).")] = False,
    candidate: Annotated[
        str | None,
        typer.Option(
            help="The version to evaluate and ship: MODEL@ALIAS, MODEL:VERSION or MODEL:latest "
            "(default MODEL@candidate)."
        ),
    ] = None,
    holdout: Annotated[
        str, typer.Option(help="Labelled rows in the project to evaluate on (.csv, .parquet, .jsonl).")
    ] = "data/holdout.parquet",
    policy: Annotated[str, typer.Option(help="The gates policy in the project.")] = "gates.yaml",
    deployment: Annotated[
        str | None, typer.Option(help="The production deployment the canary rolls through (default MODEL).")
    ] = None,
    image: Annotated[
        str | None,
        typer.Option(
            help="The image repository REGISTRY/NAME (default ghcr.io/OWNER/REPO or $CI_REGISTRY_IMAGE)."
        ),
    ] = None,
    python: Annotated[str, typer.Option(help="The Python version the jobs run.")] = "3.11",
    out: Annotated[Path, typer.Option(help="The project's root folder.")] = Path("."),
    force: Annotated[bool, typer.Option("--force", help="Replace an existing pipeline file.")] = False,
) -> None:
    """Write a pipeline: tests, evaluation, gates, signing, image, staging with a smoke check, canary."""
    from shipyard import __version__
    from shipyard.packaging.pipelines import PipelineSettings, write_pipeline

    if github == gitlab:
        raise ConfigError("say which CI the pipeline is for: --github or --gitlab (one of them)")
    settings = PipelineSettings.of(
        model, target, candidate=candidate, holdout=holdout, policy=policy, deployment=deployment,
        image=image, python=python,
    )  # fmt: skip
    path = write_pipeline("github" if github else "gitlab", settings, out, version=__version__, force=force)
    typer.echo(
        f"wrote {path}: {settings.candidate} from tests to a canary on {settings.deployment}; "
        "set the secrets docs/deploy.md lists (CI/CD: shipyard ci init)"
    )
