"""Explanations of predictions (the next issue fills this room)."""
