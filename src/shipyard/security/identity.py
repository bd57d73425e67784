"""Who the CLI and the Python API act as, decided from the settings in one place.

With `SHIPYARD_API_KEY` it is the key's principal: its role and model scope are checked on every
action, and its name is the actor in the audit log. Without a key it is whoever runs the
process, as admin: direct access to the stores is full control whatever Shipyard checks, so a
check would protect nothing. `SHIPYARD_RUN_AS` (set by the scheduler for each run) narrows
either to the principal that added the schedule, and can never widen it.
"""

from __future__ import annotations

import getpass
import json

from shipyard.config import Settings
from shipyard.errors import ConfigError, PermissionDeniedError
from shipyard.security.access import Principal, Role
from shipyard.security.keys import KeyVerifier
from shipyard.store.metadata import MetadataStore

__all__ = ["acting_principal"]


def acting_principal(meta: MetadataStore, settings: Settings, *, actor: str | None = None) -> Principal:
    """The principal a registry opened with `settings` acts as.

    Args:
        meta: the metadata store, where API keys are looked up.
        settings: the key (`api_key`) and the delegation (`run_as`), if any.
        actor: the local user's name to use instead of the OS user's.

    Raises:
        AuthenticationError: the API key is unknown, wrong, expired or revoked.
        ConfigError: `run_as` is not a principal's JSON.
        PermissionDeniedError: `run_as` names a principal stronger than the process's own.
    """
    if settings.api_key:
        own = KeyVerifier(meta).authenticate(settings.api_key)
    else:
        own = Principal(actor or _os_user(), Role.ADMIN, via="local")
    if settings.run_as is None:
        return own
    try:
        delegate = Principal.from_dict(json.loads(settings.run_as))
    except ValueError as exc:
        raise ConfigError(f"SHIPYARD_RUN_AS is not a principal's JSON: {exc}") from None
    if not delegate.within(own):
        raise PermissionDeniedError(
            f"SHIPYARD_RUN_AS asks to act as {delegate}, which may do more than {own} may; "
            "a run can only act as a principal no stronger than its own"
        )
    return delegate


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
