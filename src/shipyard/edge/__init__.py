"""Models exported for the edge (the next issue fills this room)."""
