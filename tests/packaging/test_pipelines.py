"""`shipyard ci init`: the GitHub workflow and the GitLab file pass their platform's schema (and
zizmor, for GitHub), run their jobs in order, and fail the production job when the canary rolls back."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.commands import shipyard_cli
from tests.servers import ServerProcess

from homes import copy_home
from shipyard import Registry, Settings
from shipyard.errors import ShipyardError
from shipyard.packaging.pipelines import JOBS, PLATFORMS, PipelineSettings, render_pipeline
from shipyard.rollout.deployments import Deployments
from shipyard.security.keys import Keys

ARGS = ("--model", "credit", "--target", "default")


def tool(name: str) -> str:
    """The linter's executable beside this interpreter (installed with the dev extra)."""
    found = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed; install the dev extra (pip install 'shipyard[dev]')")
    return found


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Both pipelines as `shipyard ci init` writes them into a fresh project folder."""
    project = tmp_path_factory.mktemp("project")
    home = tmp_path_factory.mktemp("home")
    for platform in PLATFORMS:
        done = shipyard_cli(home, "ci", "init", f"--{platform}", *ARGS, "--out", str(project))
        assert done.returncode == 0, done.stderr
        assert f"wrote {project / PLATFORMS[platform]}" in " ".join(done.stdout.split())
    return {platform: project / path for platform, path in PLATFORMS.items()}


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(path.read_text())
    return data


@pytest.mark.parametrize(("platform", "schema"), [("github", "github-workflows"), ("gitlab", "gitlab-ci")])
def test_each_pipeline_passes_its_platforms_schema_offline(
    written: dict[str, Path], platform: str, schema: str, tmp_path: Path
) -> None:
    # The schemas ship inside check-jsonschema: a proxy that answers nothing proves no fetch.
    offline = os.environ | {"HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9"}
    command = [tool("check-jsonschema"), "--builtin-schema", f"vendor.{schema}"]
    done = subprocess.run(
        [*command, str(written[platform])], capture_output=True, text=True, env=offline, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    broken = tmp_path / "broken.yml"  # and the check does reject a pipeline its platform would
    typo = {"github": ("    runs-on: ubuntu-latest\n", "    run-on: ubuntu-latest\n"),
            "gitlab": ("  stage: test\n", "  stages: test\n")}[platform]  # fmt: skip
    broken.write_text(written[platform].read_text().replace(*typo, 1))
    assert (
        subprocess.run([*command, str(broken)], capture_output=True, env=offline, check=False).returncode == 1
    )


def test_zizmor_finds_nothing_in_the_github_workflow(written: dict[str, Path]) -> None:
    for persona in ("regular", "auditor"):  # auditor: every audit, false positives included
        done = subprocess.run(
            [tool("zizmor"), "--offline", "--persona", persona, "--format", "json", str(written["github"])],
            capture_output=True,
            text=True,
            check=False,
        )
        assert (done.returncode, json.loads(done.stdout)) == (0, []), done.stdout + done.stderr


def test_the_jobs_run_in_order_and_later_ones_act_on_the_evaluated_version(written: dict[str, Path]) -> None:
    github = load(written["github"])
    assert tuple(github["jobs"]) == JOBS
    for before, job in itertools.pairwise(JOBS):
        needs = github["jobs"][job]["needs"]
        assert before in ([needs] if isinstance(needs, str) else needs), job
    assert github["permissions"] == {} and github["concurrency"]["cancel-in-progress"] is False
    for name, job in github["jobs"].items():
        assert set(job["permissions"]) <= {"contents", "packages"}, name
        assert all(p == "read" for k, p in job["permissions"].items() if k != "packages"), name
        for step in job["steps"]:
            assert "${{" not in step.get("run", ""), (name, step)  # values reach scripts through env
            if "actions/checkout" in step.get("uses", ""):
                assert step["with"]["persist-credentials"] is False
        if name not in ("test", "evaluate"):
            assert job["env"]["REF"] == "${{ needs.evaluate.outputs.ref }}", name
    assert (github["jobs"]["staging"]["environment"], github["jobs"]["production"]["environment"]) == (
        "staging",
        "production",
    )
    evaluate = "\n".join(s.get("run", "") for s in github["jobs"]["evaluate"]["steps"])
    assert '--summary "$GITHUB_STEP_SUMMARY"' in evaluate and '>> "$GITHUB_OUTPUT"' in evaluate

    gitlab = load(written["gitlab"])
    assert tuple(gitlab["stages"]) == JOBS
    assert [gitlab[job]["stage"] for job in JOBS] == list(JOBS)
    assert gitlab["evaluate"]["artifacts"]["expose_as"] == "evaluation report"
    assert gitlab["evaluate"]["artifacts"]["reports"]["dotenv"] == "build/candidate.env"
    assert gitlab["production"]["rules"] == [{"when": "manual"}]
    assert gitlab["production"]["environment"] == {"name": "production"}
    for platform, data in (("github", github), ("gitlab", gitlab)):
        variables = data["env" if platform == "github" else "variables"]
        assert (variables["MODEL"], variables["CANDIDATE"], variables["DEPLOYMENT"]) == (
            "credit", "credit@candidate", "credit"
        )  # fmt: skip


def production_script(path: Path) -> str:
    data = load(path)
    if "jobs" in data:
        return "\n".join(s["run"] for s in data["jobs"]["production"]["steps"][2:])  # after the install
    return "\n".join(data["production"]["script"][1:])


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory, credit_v1_v2_home: Path) -> Path:
    """A home with credit:1 and credit:2, deployment `api` serving credit:1."""
    home = copy_home(credit_v1_v2_home, tmp_path_factory.mktemp("deployed") / "home")
    with Registry(Settings.for_home(home)) as reg:
        Deployments(reg).create("api", "credit:1")
    return home


@pytest.mark.parametrize("platform", list(PLATFORMS))
def test_the_production_job_fails_when_the_canary_rolls_back(
    written: dict[str, Path], deployed: Path, tmp_path: Path, platform: str
) -> None:
    """The production job's own script, run as its CI runs it (bash -eo pipefail) with the real
    `shipyard` against a real registry; the rollback is the controller's, made while it waits."""
    from shipyard.rollout.rollouts import Rollouts

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "shipyard").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m shipyard "$@"\n')
    (bin_dir / "shipyard").chmod(0o755)
    env = os.environ | {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "SHIPYARD_HOME": str(deployed),
        "DEPLOYMENT": "api",
        "REF": "credit:2",
    }
    script = production_script(written[platform]).replace("--timeout 2h", "--timeout 2h --every 0.2")
    job = subprocess.Popen(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        with Registry(Settings.for_home(deployed)) as reg:
            rollouts = Rollouts(reg)
            started = None
            while started is None or not started.active:
                assert job.poll() is None, job.communicate()
                started = rollouts.current("api")
            rollouts.roll_back(started, reason="error rate 30% > 1%", verdict={"verdict": "fail"})
        out, err = job.communicate(timeout=120)
    finally:
        job.kill()
    assert job.returncode == 1, out + err
    assert "rolled back: error rate 30% > 1%" in err


def smoke_request(path: Path) -> str:
    """The smoke check's request part (after the port-forward), from the staging job's script."""
    data = load(path)
    if "jobs" in data:
        script = next(s["run"] for s in data["jobs"]["staging"]["steps"] if s.get("name") == "smoke check")
    else:
        script = data["staging"]["script"][-1]
    return script[script.index("python - <<'PY'") :]


def test_the_smoke_check_posts_the_contracts_example_and_fails_without_a_2xx(
    written: dict[str, Path], deployed: Path
) -> None:
    """The smoke check against a real `shipyard serve --auth required` where the port-forward
    lands: with the staging key it passes, without it the server answers 401 and the job fails."""
    with Registry(Settings.for_home(deployed)) as reg:
        key = Keys(reg).create("staging-smoke", role="predictor").secret
    server = ServerProcess(deployed, ["credit:1"], "--auth", "required").wait_ready()
    try:
        for platform, path in written.items():
            script = smoke_request(path).replace("18080", str(server.port))
            name = "SMOKE_API_KEY" if platform == "github" else "STAGING_API_KEY"
            passed, refused = (
                subprocess.run(
                    ["bash", "-eo", "pipefail", "-c", script],
                    capture_output=True,
                    text=True,
                    env=os.environ | {name: secret},
                    check=False,
                )
                for secret in (key, "")
            )
            assert passed.returncode == 0, (platform, passed.stderr)
            assert '/v1/models/credit/predict {"request_id"' in passed.stdout, platform
            assert refused.returncode == 1 and "401" in refused.stderr, (platform, refused.stderr)
    finally:
        server.terminate()


def test_an_existing_file_is_kept_unless_forced(tmp_path: Path) -> None:
    home = tmp_path / "home"
    target = tmp_path / ".gitlab-ci.yml"
    target.write_text("# mine\n")
    kept = shipyard_cli(home, "ci", "init", "--gitlab", *ARGS, "--out", str(tmp_path))
    assert kept.returncode == 1 and "exists; pass --force to replace it" in kept.stderr
    assert target.read_text() == "# mine\n"
    forced = shipyard_cli(home, "ci", "init", "--gitlab", *ARGS, "--out", str(tmp_path), "--force")
    assert forced.returncode == 0, forced.stderr
    assert target.read_text().startswith("# Written by `shipyard ci init --gitlab`")
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".part")] == []


def test_bad_flags_are_refused_with_a_clear_error_and_nothing_written(tmp_path: Path) -> None:
    for args, says in [
        ((*ARGS,), "--github or --gitlab"),
        (("--github", "--gitlab", *ARGS), "--github or --gitlab"),
        (("--github", *ARGS, "--holdout", "../outside.csv"), "--holdout is '../outside.csv'"),
        (
            ("--github", "--model", "credit/../x", "--target", "default"),
            "model name 'credit/../x' is not allowed",
        ),
    ]:
        done = shipyard_cli(tmp_path / "home", "ci", "init", *args, "--out", str(tmp_path / "project"))
        assert done.returncode == 1, (args, done.stderr)
        assert says in done.stderr, (args, done.stderr)
    missing = shipyard_cli(tmp_path / "home", "ci", "init", "--github", "--out", str(tmp_path / "project"))
    assert missing.returncode == 2 and "--model" in missing.stderr
    assert not (tmp_path / "project").exists()


@pytest.mark.parametrize(
    ("flags", "says"),
    [
        ({"candidate": "other@candidate"}, "names model 'other', not --model 'credit'"),
        ({"candidate": "credit:zero"}, "expected a number >= 1 or 'latest'"),
        ({"policy": "${{ github.event.issue.title }}"}, "--policy is '${{ github.event.issue.title }}'"),
        ({"holdout": "/etc/passwd"}, "expected a relative path inside the project"),
        ({"image": "ghcr.io/acme/credit:latest"}, "without a tag"),
        ({"image": "credit"}, "expected an image repository REGISTRY/NAME"),
        ({"python": "three"}, "--python is 'three'"),
        ({"deployment": "a b"}, "model name 'a b' is not allowed"),
        ({"target": "$(id)"}, "--target is '$(id)'"),
    ],
)
def test_a_value_that_could_become_code_or_names_nothing_is_refused(flags: dict[str, str], says: str) -> None:
    settings = {"model": "credit", "target": "default"} | flags
    with pytest.raises(ShipyardError) as raised:
        PipelineSettings.of(settings.pop("model"), settings.pop("target"), **settings)
    assert says in str(raised.value)


def test_the_candidate_and_image_choices_reach_the_files() -> None:
    settings = PipelineSettings.of(
        "credit",
        "default",
        candidate="credit",
        deployment="credit-api",
        image="registry.example.com/acme/credit",
    )
    assert settings.candidate == "credit:latest"
    github = yaml.safe_load(render_pipeline("github", settings, version="1.2.3"))
    assert github["env"]["IMAGE"] == "registry.example.com/acme/credit"
    image_job = github["jobs"]["build-image"]
    assert image_job["permissions"] == {"contents": "read"}  # no packages: write off ghcr.io
    assert image_job["steps"][1]["env"]["REGISTRY_PASSWORD"] == "${{ secrets.REGISTRY_PASSWORD }}"
    gitlab = yaml.safe_load(render_pipeline("gitlab", settings, version="1.2.3"))
    assert gitlab["variables"]["DEPLOYMENT"] == "credit-api"
    assert '"shipyard[postgres,s3]==1.2.3"' in gitlab["evaluate"]["script"][0]
    assert "$REGISTRY_PASSWORD" in gitlab["build-image"]["script"][0]
