"""`shipyard contract`: show a version's contract and edit it into a new version."""

from __future__ import annotations

import json
from pathlib import Path

from tests.commands import shipyard_in_process


def test_contract_show_and_edit_make_a_new_version(home: Path, registered: Path) -> None:
    shown = shipyard_in_process(home, "contract", "show", "fraud@staging")
    assert shown.returncode == 0
    text = shown.stdout.replace("on_missing: pass", "on_missing: reject")
    assert "name: age" in text
    (registered / "contract.yaml").write_text(text)
    edited = shipyard_in_process(
        home, "contract", "edit", "fraud:1", "--file", str(registered / "contract.yaml")
    )
    assert edited.returncode == 0, edited.stderr
    assert "fraud:2" in edited.stdout
    contract = json.loads(shipyard_in_process(home, "contract", "show", "fraud:2", "--json").stdout)
    assert next(f for f in contract["features"] if f["name"] == "income")["on_missing"] == "reject"
