"""Deployments with stable, canary and shadow arms; rollouts with automated analysis."""
