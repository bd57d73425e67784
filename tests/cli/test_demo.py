"""`shipyard demo`: it runs in a fresh home and again in the same one; its steps never import it back."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from tests.commands import shipyard_cli

import shipyard.cli


def test_no_step_of_the_demo_imports_the_demo_command_back() -> None:
    steps = sorted(Path(shipyard.cli.__file__).parent.glob("demo_*.py"))
    assert len(steps) >= 6
    for step in steps:
        tree = ast.parse(step.read_text(encoding="utf-8"))
        imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
        imported |= {a.name for node in ast.walk(tree) if isinstance(node, ast.Import) for a in node.names}
        assert "shipyard.cli.demo" not in imported, f"{step.name} imports shipyard.cli.demo"


@pytest.mark.slow
@pytest.mark.timeout(1200)  # about 40 s a run on an idle machine, minutes on a busy one
def test_the_demo_runs_in_a_fresh_home_and_again_in_the_same_one(home: Path) -> None:
    for run_number in (1, 2):
        done = shipyard_cli(home, "demo", "--rows", "2000", timeout=590)
        assert done.returncode == 0, f"demo run {run_number}:\n{done.stdout[-3000:]}\n{done.stderr}"
        for expected in (
            f"registered cancer:{run_number}",
            "credit@staging",
            "rejected",
            "expected a number",
            "outside the contract range",
            "PASSED",
            "FAILED",
            "promoted",
            "promotion refused",
            "quarantined rows",
            "audit chain verified",
            "demo finished",
        ):
            assert expected in done.stdout, f"demo run {run_number} did not show {expected!r}"
        # the good version passes the gates and is promoted, the weak one is refused: also the second time
        assert done.stdout.count("promoted: credit@production") == 1
        assert done.stdout.count("promotion refused") == 1
    assert (home / "reports").is_dir()
