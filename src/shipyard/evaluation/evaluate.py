"""Evaluate a registered version on a labelled data set, through its contract, and store the result.

The rows go through the version's contract first, as at serving time; rows it rejects are
counted (with their first violations) and left out, so the numbers describe what the model would
have answered (`evaluation/measure.py`). When the champion alias (default `production`) points at
another version, that version is evaluated on the same rows too, so the two can be compared side
by side and the gates can hold the challenger to the champion. The result is an `Evaluation`
(`evaluation/result.py`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.core.batch import Batch
from shipyard.errors import EvaluationError, NotFoundError, ShipyardError
from shipyard.evaluation.explanations import holdout_explanations
from shipyard.evaluation.measure import MeasureOptions, measure
from shipyard.evaluation.result import Evaluation
from shipyard.evaluation.robustness import RobustnessSettings
from shipyard.evaluation.slices import SliceSpec
from shipyard.security.masking import Masker

if TYPE_CHECKING:
    from shipyard.registry.loaded import LoadedModel
    from shipyard.registry.registry import Registry

__all__ = ["DEFAULT_CHAMPION", "evaluate"]

DEFAULT_CHAMPION = "production"


def evaluate(
    ref: str,
    data: Any,
    *,
    target: str,
    sensitive: Sequence[str] = (),
    slices: Sequence[str | SliceSpec] = (),
    positive: Any = None,
    threshold: float | None = None,
    bins: int = 10,
    resamples: int = 200,
    seed: int = 0,
    level: float = 0.95,
    robust: RobustnessSettings | bool = True,
    champion: str | None = DEFAULT_CHAMPION,
    explain: bool = True,
    store: bool = True,
    trust_pickle: bool = False,
    registry: Registry | None = None,
) -> Evaluation:
    """Evaluate a version on labelled rows and store the result on the version.

    Args:
        ref: the version (`fraud:4`, `fraud@staging`).
        data: a CSV, Parquet or JSON Lines file, or rows (DataFrame, Arrow table, records).
        target: the column holding the true labels (or values, for a regressor).
        sensitive: features to measure group fairness over.
        slices: features to break the metrics down by (`country`, `age:4`, `age:18,30,50`).
        positive: the positive class for fairness (default: the second class of a binary model).
        threshold: also compute the threshold-dependent metrics at this probability cut-off.
        bins: calibration bins (uniform and quantile).
        resamples: bootstrap resamples of the headline metrics (0 for none).
        seed: the seed of the bootstrap and the robustness checks.
        level: the confidence level of the bootstrap intervals.
        robust: the robustness budgets, True for the defaults, False to skip.
        champion: the alias of the version to compare with (None: no comparison).
        explain: explain a seeded sample of the rows (up to 300, seeded by `seed`) for the
            report's summary plot, and keep the version's stored importance with the result
            (`evaluation.explanations`); the champion is not explained.
        store: keep the evaluation on the version in the registry.
        trust_pickle: allow loading custom Python models (pyfunc), which runs their code.
        registry: the registry (the default one from the environment when omitted).

    Raises:
        EvaluationError: no target column, a target of the wrong type or with missing or unseen
            labels, an unknown sensitive or slice feature, no rows, or no row the contract accepts.
        NotFoundError: no such version.
    """
    from shipyard.registry.default import default_registry

    reg = registry or default_registry()
    loaded = reg.load(ref, trust_pickle=trust_pickle)
    version = loaded.version
    source = str(data) if isinstance(data, str | os.PathLike) else type(data).__name__
    batch = _read(data, loaded)
    specs = [s if isinstance(s, SliceSpec) else SliceSpec.parse(s) for s in slices]
    _check_columns(batch, target, sensitive, specs, str(version.ref))
    options = MeasureOptions(
        target=target,
        sensitive=tuple(sensitive),
        specs=tuple(specs),
        positive=positive,
        threshold=threshold,
        bins=bins,
        resamples=resamples,
        seed=seed,
        level=level,
        robust=RobustnessSettings(seed=seed) if robust is True else (robust or None),
    )
    from shipyard.registry.lineage import fingerprint

    rows_id = fingerprint(batch)  # hashed once: the champion is evaluated on the same rows
    if loaded.contract.pii_masks:  # group labels of pii features are keyed hashes, never values
        options = replace(options, masker=Masker.for_home(reg.settings.home, reg.settings.masking_key))
    result = measure(loaded, batch, options, source, rows_id)
    if explain:
        result = replace(result, explanations=holdout_explanations(loaded, batch, seed=seed))
    rival: Evaluation | None = None
    rival_error: str | None = None
    if champion is not None:
        try:
            holder = reg.get(f"{version.name}@{champion}")
        except NotFoundError:
            holder = None
        if holder is not None and holder.version != version.version:
            try:
                rival = measure(
                    reg.load(holder.ref, trust_pickle=trust_pickle), batch, options, source, rows_id
                )
            except ShipyardError as exc:
                rival_error = f"{holder.ref} ({champion}) cannot be evaluated on these rows: {exc}"
    result = replace(result, champion=rival, champion_alias=champion, champion_error=rival_error)
    if not store:
        return result
    stored, stored_rival = reg.results.add_evaluation(
        result.ref,
        data_fingerprint=str(result.data["fingerprint"]),
        rows=int(result.data["rows"]),
        body=result._stored(),
        champion=None if rival is None else (rival.ref, rival._stored()),
    )
    if rival is not None and stored_rival is not None:
        rival = replace(rival, id=stored_rival.id)
    return replace(result, id=stored.id, champion=rival)


def _read(data: Any, loaded: LoadedModel) -> Batch:
    from shipyard.store.tabular import read_rows

    if isinstance(data, str | os.PathLike):
        batch = read_rows(Path(data), contract=loaded.contract)
    else:
        batch = Batch.coerce(data)
    if batch.n_rows == 0:
        raise EvaluationError(
            f"the data to evaluate {loaded.version.ref} on has no rows; expected labelled rows"
        )
    return batch


def _check_columns(
    batch: Batch, target: str, sensitive: Sequence[str], specs: Sequence[SliceSpec], where: str
) -> None:
    columns = list(batch.names)
    if target not in batch.columns:
        raise EvaluationError(
            f"the data has no target column {target!r}; its columns are {columns}. Name the label "
            "column with --target"
        )
    for name in sensitive:
        if name not in batch.columns:
            raise EvaluationError(f"sensitive feature {name!r} is not in the data; its columns are {columns}")
    for spec in specs:
        if spec.feature not in batch.columns:
            raise EvaluationError(
                f"slice feature {spec.feature!r} is not in the data; its columns are {columns}"
            )
        if spec.feature == target:
            raise EvaluationError(f"slice {spec} is the target column; slice by a feature of {where}")
