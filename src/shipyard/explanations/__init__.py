"""Explanations of predictions, over the one scoring step: why a version answered what it did,
per request, per batch and for the model as a whole (`shipyard.attribution` holds the engines).

The package is named `explanations` so that `shipyard.explain(ref, rows)` can be the public
function (`explaining.explain`): a subpackage named `explain` would take that name on import.
"""
