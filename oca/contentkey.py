"""Content keys: the path-safe names of files, identical on origin and every appliance.

A key such as ``t1042/avc-720p-3000k.mp4`` is the URL path below an appliance's root. It is the
only thing a request can name, so it is checked here before it is used for anything: a key that
passes cannot climb out of a directory, hide a NUL, or smuggle look-alike characters.
"""

from __future__ import annotations

import re

MAX_KEY_BYTES = 512
_ALLOWED = re.compile(r"[A-Za-z0-9._/-]+")


class InvalidKey(ValueError):
    """The string is not a content key; `reason` says why (for the log or the CLI)."""

    def __init__(self, key: object, reason: str) -> None:
        super().__init__(f"invalid content key {key!r}: {reason}")
        self.reason = reason


def validate_key(key: str) -> str:
    """Return `key` unchanged if it is a valid content key, else raise InvalidKey.

    Rules: only ``[A-Za-z0-9._/-]`` (ASCII; so no NUL, no percent signs, no unicode look-alikes),
    1..512 bytes, no leading or trailing ``/``, no empty segment (``a//b``), no ``.`` or ``..`` segment.
    """
    if not isinstance(key, str):
        raise InvalidKey(key, "not a string")
    if not key:
        raise InvalidKey(key, "empty")
    if len(key) > MAX_KEY_BYTES:  # all allowed characters are one byte each
        raise InvalidKey(key, f"longer than {MAX_KEY_BYTES} bytes")
    if not _ALLOWED.fullmatch(key):
        bad = next(ch for ch in key if not _ALLOWED.fullmatch(ch))
        raise InvalidKey(key, f"character {bad!r} is not allowed (only A-Z a-z 0-9 . _ / -)")
    if key.startswith("/"):
        raise InvalidKey(key, "leading '/'")
    if key.endswith("/"):
        raise InvalidKey(key, "trailing '/'")
    for segment in key.split("/"):
        if segment == "":
            raise InvalidKey(key, "empty path segment")
        if segment in (".", ".."):
            raise InvalidKey(key, f"'{segment}' segment")
    return key


def is_valid_key(key: str) -> bool:
    try:
        validate_key(key)
    except InvalidKey:
        return False
    return True
