"""Which arm answers a request: a weighted split, sticky by a key, with no shared state.

A request with a routing key lands on a point in [0, 100) given by a hash of the key, the same on
every replica and across restarts; one without a key lands on a random point. The canary owns
[0, canary weight) and the stable arm the rest, so raising the canary's weight only moves stable
users onto it, and a user seen on the canary at 5% stays on it at 25%. An arm whose model is not
ready answers nothing: its share goes to the stable arm.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Collection
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the deployments' store imports SQLAlchemy, which a bundle's server skips
    from shipyard.rollout.deployments import Arm, Deployment

__all__ = ["Router", "point"]

_SCALE = 100.0 / 2**64


def point(key: str, *, salt: bytes = b"route") -> float:
    """Where `key` lands in [0, 100): the same everywhere, for the same key and salt."""
    digest = hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=8, person=salt[:16])
    return int.from_bytes(digest.digest(), "big") * _SCALE


class Router:
    """The routing of one deployment generation.

    Args:
        deployment: the deployment and its arms.
        ready: the versions whose models are loaded and warmed up.
    """

    def __init__(self, deployment: Deployment, ready: Collection[int]) -> None:
        self.deployment = deployment
        self.stable = deployment.stable
        canary = deployment.arm("canary")
        shadow = deployment.arm("shadow")
        self.canary: Arm | None = canary if canary is not None and canary.version in ready else None
        self.shadow: Arm | None = shadow if shadow is not None and shadow.version in ready else None
        self._canary_share = self.canary.weight if self.canary is not None else 0.0
        self._shadow_share = self.shadow.weight if self.shadow is not None else 0.0

    def pick(self, key: str | None) -> Arm:
        """The arm that answers a request with routing key `key` (None: no key)."""
        if self._canary_share <= 0:
            return self.stable
        spot = point(key) if key is not None else random.random() * 100.0
        return self.canary if spot < self._canary_share and self.canary is not None else self.stable

    def copy_to_shadow(self, key: str | None) -> Arm | None:
        """The shadow arm if this request's copy goes to it, else None."""
        if self.shadow is None:
            return None
        if self._shadow_share >= 100:
            return self.shadow
        spot = point(key, salt=b"shadow") if key is not None else random.random() * 100.0
        return self.shadow if spot < self._shadow_share else None
