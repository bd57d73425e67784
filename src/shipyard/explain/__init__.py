"""Explanations of predictions, over the one scoring step: why a version answered what it did,
per request, per batch and for the model as a whole (`shipyard.attribution` holds the engines)."""
