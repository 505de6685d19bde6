"""Field readers for JSON request bodies: each returns the value or raises a 422 naming the field.

Pure functions over already-parsed JSON (dicts, lists, scalars). JSON booleans are not integers
here, even though Python says ``isinstance(True, int)``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from control_plane.errors import invalid

_MISSING: Any = object()
_SHA256 = re.compile(r"[0-9a-f]{64}")
_COUNTRY = re.compile(r"[A-Z]{2}")
_IDENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def obj(value: Any, field: str = "") -> dict[str, Any]:
    if not isinstance(value, dict):
        raise invalid(field or "(body)", "expected a JSON object")
    return value


def get(body: dict[str, Any], name: str, prefix: str, default: Any) -> Any:
    if name in body and body[name] is not None:
        return body[name]
    if default is _MISSING:
        raise invalid(prefix + name, "required field is missing", "missing_field")
    return default


def string(body: dict, name: str, default: Any = _MISSING, *, prefix: str = "", max_len: int = 1000,
           choices: tuple[str, ...] | None = None) -> Any:
    value = get(body, name, prefix, default)
    if value is default and default is not _MISSING:
        return value
    if not isinstance(value, str):
        raise invalid(prefix + name, "expected a string")
    if not value or len(value) > max_len:
        raise invalid(prefix + name, f"expected 1 to {max_len} characters")
    if choices is not None and value not in choices:
        raise invalid(prefix + name, f"expected one of {', '.join(choices)}")
    return value


def integer(body: dict, name: str, default: Any = _MISSING, *, prefix: str = "", lo: int | None = 0,
            hi: int | None = None) -> Any:
    value = get(body, name, prefix, default)
    if value is default and default is not _MISSING:
        return value
    if isinstance(value, bool) or not isinstance(value, int):
        raise invalid(prefix + name, "expected an integer")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise invalid(prefix + name, f"expected an integer in [{lo}, {hi if hi is not None else '∞'}]")
    return value


def number(body: dict, name: str, default: Any = _MISSING, *, prefix: str = "", lo: float | None = 0.0,
           hi: float | None = None) -> Any:
    value = get(body, name, prefix, default)
    if value is default and default is not _MISSING:
        return value
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        raise invalid(prefix + name, "expected a number")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise invalid(prefix + name, f"expected a number in [{lo}, {hi if hi is not None else '∞'}]")
    return float(value)


def boolean(body: dict, name: str, default: Any = _MISSING, *, prefix: str = "") -> Any:
    value = get(body, name, prefix, default)
    if not isinstance(value, bool):
        raise invalid(prefix + name, "expected true or false")
    return value


def identifier(body: dict, name: str, default: Any = _MISSING, *, prefix: str = "") -> Any:
    value = string(body, name, default, prefix=prefix, max_len=64)
    if value is not default and not _IDENT.fullmatch(value):
        raise invalid(prefix + name, "expected 1-64 characters of A-Z a-z 0-9 . _ - (starting alphanumeric)")
    return value


def is_identifier(value: str) -> bool:
    return bool(_IDENT.fullmatch(value))


def check_identifier(value: str, field: str) -> str:
    if not _IDENT.fullmatch(value):
        raise invalid(field, "expected 1-64 characters of A-Z a-z 0-9 . _ - (starting alphanumeric)")
    return value


def country(body: dict, name: str, default: Any = _MISSING, *, prefix: str = "") -> Any:
    value = string(body, name, default, prefix=prefix, max_len=2)
    if value is not default and not _COUNTRY.fullmatch(value):
        raise invalid(prefix + name, "expected an ISO 3166-1 alpha-2 code in upper case, e.g. DE")
    return value


def sha256(body: dict, name: str, default: Any = _MISSING, *, prefix: str = "") -> Any:
    value = string(body, name, default, prefix=prefix, max_len=64)
    if value is not default and not _SHA256.fullmatch(value):
        raise invalid(prefix + name, "expected 64 lowercase hex digits")
    return value


def timestamp(body: dict, name: str, default: Any = _MISSING, *, prefix: str = "") -> Any:
    """An RFC 3339 date-time with an offset (``Z`` or ``+02:00``) → Unix seconds (float)."""
    value = string(body, name, default, prefix=prefix, max_len=64)
    if value is default and default is not _MISSING:
        return value
    return parse_time(value, prefix + name)


def parse_time(value: str, field: str) -> float:
    # RFC 3339 §5.6 requires the offset; a naive time would be read in the server's zone.
    try:
        parsed = datetime.fromisoformat(value.replace("z", "Z"))
    except ValueError:
        raise invalid(field, "expected an RFC 3339 time such as 2026-11-25T17:00:00Z") from None
    if parsed.tzinfo is None:
        raise invalid(field, "the time needs an offset (Z or +HH:MM)")
    return parsed.timestamp()


def format_time(seconds: float | None) -> str | None:
    """Unix seconds → RFC 3339 UTC (``2026-11-25T17:00:00Z``); None stays None."""
    if seconds is None:
        return None
    moment = datetime.fromtimestamp(seconds, UTC)
    text = moment.isoformat(timespec="milliseconds" if moment.microsecond else "seconds")
    return text.replace("+00:00", "Z")
