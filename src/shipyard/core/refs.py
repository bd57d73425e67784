"""Model references: `NAME`, `NAME:VERSION`, `NAME:latest` and `NAME@ALIAS`."""

from __future__ import annotations

import re
from dataclasses import dataclass

from shipyard.errors import RefError

__all__ = ["ModelRef", "check_alias", "check_name", "check_tag_key"]

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_ALIAS = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")
_TAG_KEY = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,63}")
_RESERVED_ALIASES = frozenset({"latest"})


def _shown(text: str) -> str:
    return repr(text) if len(text) <= 80 else repr(text[:77] + "...")


def check_name(name: str) -> str:
    """Return `name` if it is a safe model name, else raise.

    Names start with a letter or digit and hold letters, digits, '.', '_' and '-' (at most 128),
    so a name can never step outside a folder it is used in.

    Raises:
        RefError: the name holds a path separator, a NUL or any other character outside the set.
    """
    if not isinstance(name, str) or not _NAME.fullmatch(name) or ".." in name:
        raise RefError(
            f"model name {_shown(str(name))} is not allowed; expected 1-128 characters of letters, "
            "digits, '.', '_' and '-', starting with a letter or digit (e.g. 'fraud' or 'churn-v2')"
        )
    return name


def check_alias(alias: str) -> str:
    """Return `alias` if it is a valid alias, else raise.

    Raises:
        RefError: the alias is malformed or reserved ('latest').
    """
    if not isinstance(alias, str) or not _ALIAS.fullmatch(alias):
        raise RefError(
            f"alias {_shown(str(alias))} is not allowed; expected 1-64 letters, digits, '_' and '-', "
            "starting with a letter (e.g. 'production')"
        )
    if alias.lower() in _RESERVED_ALIASES:
        raise RefError(f"alias {alias!r} is reserved; 'NAME:latest' already means the newest version")
    return alias


def check_tag_key(key: str) -> str:
    """Return `key` if it is a valid tag key, else raise.

    Raises:
        RefError: the key is malformed.
    """
    if not isinstance(key, str) or not _TAG_KEY.fullmatch(key):
        raise RefError(
            f"tag key {_shown(str(key))} is not allowed; expected 1-64 letters, digits, '_', '.' "
            "and '-', starting with a letter (e.g. 'team')"
        )
    return key


@dataclass(frozen=True, slots=True)
class ModelRef:
    """A reference to a model: the name and at most one of version or alias.

    `version=None, alias=None` means the latest live version.
    """

    name: str
    version: int | None = None
    alias: str | None = None

    def __post_init__(self) -> None:
        check_name(self.name)
        if self.version is not None and self.alias is not None:
            raise RefError(f"reference to {self.name!r} names both version and alias; give one")
        if self.version is not None and (isinstance(self.version, bool) or self.version < 1):
            raise RefError(f"version of {self.name!r} is {self.version!r}; expected an integer >= 1")
        if self.alias is not None:
            check_alias(self.alias)

    @classmethod
    def parse(cls, text: str) -> ModelRef:
        """Parse `NAME`, `NAME:VERSION`, `NAME:latest` or `NAME@ALIAS`.

        Raises:
            RefError: the text is none of those forms.
        """
        if not isinstance(text, str) or not text:
            raise RefError(f"model reference {text!r} is empty; expected NAME, NAME:VERSION or NAME@ALIAS")
        if "@" in text:
            name, _, alias = text.partition("@")
            return cls(check_name(name), alias=check_alias(alias))
        if ":" in text:
            name, _, version = text.partition(":")
            check_name(name)
            if version == "latest":
                return cls(name)
            if not version.isascii() or not version.isdigit() or int(version) < 1:
                raise RefError(
                    f"model reference {_shown(text)} has version {_shown(version)}; expected a "
                    "number >= 1 or 'latest' (e.g. 'fraud:3')"
                )
            return cls(name, version=int(version))
        return cls(check_name(text))

    @property
    def is_latest(self) -> bool:
        """True when the reference names neither a version nor an alias."""
        return self.version is None and self.alias is None

    def __str__(self) -> str:
        if self.version is not None:
            return f"{self.name}:{self.version}"
        if self.alias is not None:
            return f"{self.name}@{self.alias}"
        return self.name
