"""The rollout part of `shipyard demo`: a deployment, a canary that promotes and one that rolls back."""

from __future__ import annotations

import signal
import threading
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from shipyard.cli.demo_server import start_server
from shipyard.cli.render import console
from shipyard.cli.rollout import print_history
from shipyard.datasets import fit_credit_model
from shipyard.registry import Registry
from shipyard.rollout.deployments import Deployments
from shipyard.rollout.plan import AnalysisRules, Plan
from shipyard.rollout.rollouts import Rollout, Rollouts

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["rollout_demo"]

#: Small windows so the demo takes seconds; latency is loose because the demo's load generator
#: shares the machine with the server (the defaults are 100 requests, 1.5x p95 and 2x p99).
DEMO_RULES = AnalysisRules(min_requests=50, max_latency_ratio_p95=3.0, max_latency_ratio_p99=5.0)


def rollout_demo(reg: Registry, credit: pd.DataFrame) -> None:
    """Deploy `credit@staging`, roll a retrained version out by canary, then a broken one."""
    import httpx

    staging = reg.get("credit@staging")
    good = reg.register(
        fit_credit_model(credit),
        name="credit",
        train_data=credit,
        target="default",
        description="retrained on the same data: a good candidate",
    )
    broken = reg.register(
        fit_credit_model(credit.assign(default=1 - credit["default"])),
        name="credit",
        train_data=credit,
        target="default",
        description="trained on inverted labels: a broken candidate",
    )
    deployments = Deployments(reg)
    if "credit-api" in {d.name for d in deployments.list()}:
        deployments.delete("credit-api")
    deployments.create("credit-api", "credit@staging")
    console.print(
        f"\n11. [bold]shipyard deploy create credit-api --model credit@staging[/] "
        f"(stable arm: {staging.ref}); [bold]shipyard serve --deployment credit-api[/]"
    )
    server, url = start_server(["--deployment", "credit-api", "--follow-interval", "0.5"])
    rows = [
        {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in r.items()}
        for r in credit.drop(columns=["default"]).head(300).to_dict("records")
    ]
    stop = threading.Event()
    served: dict[int, int] = {}
    traffic = threading.Thread(target=_traffic, args=(url, rows, stop, served), daemon=True)
    traffic.start()
    rollouts = Rollouts(reg)
    try:
        for number, candidate, words in ((12, good, "a good version"), (13, broken, "a broken version")):
            console.print(
                f"\n{number}. [bold]shipyard rollout start credit-api --to {candidate.ref} "
                f"--strategy canary --steps 20,50,100 --interval 3s[/] ({words})"
            )
            plan = Plan(strategy="canary", steps=(20.0, 50.0, 100.0), interval=3.0, rules=DEMO_RULES)
            started = rollouts.start("credit-api", candidate.ref, plan, reason="demo")
            ended = _follow(rollouts, started, served)
            colour = "green" if ended.state == "promoted" else "red"
            console.print(f"   [{colour}]{ended.state}[/]: {ended.reason}", highlight=False)
        with httpx.Client(base_url=url, timeout=10) as http:
            _wait_followed(http, deployments.get("credit-api").generation)
            answer = http.post("/v1/models/credit-api/predict", json={"instances": rows[:1]})
        console.print(
            f"   credit@staging is now {reg.get('credit@staging').ref}; the deployment answers with "
            f"version {answer.headers['x-shipyard-version']} (X-Shipyard-Version)"
        )
    finally:
        stop.set()
        traffic.join(10)
        server.send_signal(signal.SIGTERM)
        server.wait(30)
    console.print("\n14. [bold]shipyard rollout history credit-api[/]")
    print_history(rollouts.history("credit-api"))


def _wait_followed(http: Any, generation: int, timeout: float = 10) -> None:
    """Wait until the server routes by `generation` of the arms (it checks every 0.5 s here)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in http.get("/metrics").text.splitlines():
            if line.startswith("shipyard_deployment_generation{") and float(line.split()[-1]) >= generation:
                return
        time.sleep(0.1)


def _follow(rollouts: Rollouts, started: Rollout, served: dict[int, int], timeout: float = 120) -> Rollout:
    """Print each step as the controller (inside the server) takes it, until the rollout ends."""
    seen = (-1, "")
    deadline = time.monotonic() + timeout
    current = started
    while time.monotonic() < deadline:
        current = rollouts.current(started.deployment) or started
        if (current.step, current.state) != seen:
            seen = (current.step, current.state)
            if current.active:
                console.print(
                    f"   {current.phase}; answers so far by version: {dict(sorted(served.items()))}"
                )
        if not current.active:
            return current
        time.sleep(0.3)
    rollouts.abort(started.deployment, reason="the demo's rollout took too long")
    return rollouts.current(started.deployment) or current


def _traffic(url: str, rows: list[dict[str, Any]], stop: threading.Event, served: dict[int, int]) -> None:
    """Requests without a routing key, one after another, counting which version answered."""
    import httpx

    with httpx.Client(base_url=url, timeout=10) as http:
        i = 0
        while not stop.is_set():
            i += 1
            try:
                reply = http.post("/v1/models/credit-api/predict", json={"instances": [rows[i % len(rows)]]})
            except httpx.TransportError:
                time.sleep(0.1)
                continue
            if reply.status_code == 200:
                version = int(reply.headers["x-shipyard-version"])
                served[version] = served.get(version, 0) + 1
