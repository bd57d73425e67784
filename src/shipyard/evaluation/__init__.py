"""Evaluation of a version on a data set: metrics, confidence, slices, fairness, robustness, gates."""
