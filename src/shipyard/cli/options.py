"""Options that several commands share, defined once so their flags and help read the same."""

from __future__ import annotations

from typing import Annotated

import typer

__all__ = ["JsonOpt", "TrustPickleOpt"]

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]
TrustPickleOpt = Annotated[
    bool,
    typer.Option(
        "--trust-pickle",
        help="Allow models stored as pickles (custom Python, pyfunc); they load only when signed "
        "by a trusted key. With 'models register', also read a .pkl/.joblib file.",
    ),
]
