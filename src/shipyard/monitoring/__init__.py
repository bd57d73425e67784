"""Watching served models: the prediction log now; drift and alerts build on it."""
