"""The controller's lease: one holder at a time, taken over only once it has expired."""

from __future__ import annotations

import time

from shipyard import Registry
from shipyard.rollout.lease import Lease


def test_one_holder_at_a_time_and_a_takeover_after_expiry(registry: Registry) -> None:
    first = Lease(registry.meta, "controller", "replica-a", seconds=0.5)
    second = Lease(registry.meta, "controller", "replica-b", seconds=0.5)
    assert first.acquire()
    assert not second.acquire()
    assert first.acquire()  # renewing its own lease
    assert first.holder_now() == "replica-a"
    time.sleep(0.7)
    assert first.holder_now() is None
    assert second.acquire()
    assert not first.acquire()


def test_a_released_lease_is_free_at_once(registry: Registry) -> None:
    first = Lease(registry.meta, "controller", "replica-a", seconds=60)
    first.acquire()
    first.release()
    assert Lease(registry.meta, "controller", "replica-b", seconds=60).acquire()
