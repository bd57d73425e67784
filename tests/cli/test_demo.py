"""`shipyard demo`: its steps never import it back (its runs: tests/test_readme.py)."""

from __future__ import annotations

import ast
from pathlib import Path

import shipyard.cli


def test_no_step_of_the_demo_imports_the_demo_command_back() -> None:
    steps = sorted(Path(shipyard.cli.__file__).parent.glob("demo_*.py"))
    assert len(steps) >= 6
    for step in steps:
        tree = ast.parse(step.read_text(encoding="utf-8"))
        imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
        imported |= {a.name for node in ast.walk(tree) if isinstance(node, ast.Import) for a in node.names}
        assert "shipyard.cli.demo" not in imported, f"{step.name} imports shipyard.cli.demo"


# The demo's runs (in a fresh home, then again in the same one after the README's sections) are
# tests/test_readme.py's after-the-demo case, which runs it anyway.
