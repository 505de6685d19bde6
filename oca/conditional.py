"""Conditional requests (RFC 9110 §13): decide 304 / 412 / proceed, and whether If-Range holds.

Pure: inputs are the request's header values and the file's validators (strong ETag, Last-Modified
in whole seconds); the output is a closed `Precondition`. The order is RFC 9110 §13.2.2:

1. If-Match present → false: 412.  (absent → 2. If-Unmodified-Since → false: 412)
3. If-None-Match present → false: 304 for GET/HEAD.  (absent → 4. If-Modified-Since → false: 304)
5. If-Range is evaluated only for a GET with Range (`if_range_holds`); false → ignore Range.

If-None-Match present makes If-Modified-Since ignored; If-Match present makes If-Unmodified-Since
ignored (§13.1.3, §13.1.4). Invalid dates make their header ignored (§13.1.3).
"""

from __future__ import annotations

import enum
import re
from calendar import timegm
from dataclasses import dataclass
from email.utils import formatdate
from time import strptime


class Precondition(enum.Enum):
    PROCEED = "proceed"
    NOT_MODIFIED = "not_modified"              # 304
    PRECONDITION_FAILED = "precondition_failed"  # 412


@dataclass(frozen=True, slots=True)
class Conditions:
    """The conditional request headers as received (None: absent)."""

    if_match: str | None = None
    if_none_match: str | None = None
    if_modified_since: str | None = None
    if_unmodified_since: str | None = None

    @property
    def any(self) -> bool:
        return (self.if_match is not None or self.if_none_match is not None
                or self.if_modified_since is not None or self.if_unmodified_since is not None)


NO_CONDITIONS = Conditions()

# entity-tag = [ "W/" ] DQUOTE *etagc DQUOTE ; etagc = %x21 / %x23-7E / obs-text (RFC 9110 §8.8.3)
_ETAG = re.compile(r'[ \t]*(W/)?("[\x21\x23-\x7e\x80-\xff]*")[ \t]*(?:,|$)')


def parse_etag_list(value: str) -> list[tuple[bool, str]] | None:
    """``#entity-tag`` → [(weak, '"opaque"')], or None if malformed. ``*`` is handled by callers."""
    tags: list[tuple[bool, str]] = []
    pos, end = 0, len(value)
    while pos < end:
        if value[pos] in " \t,":
            pos += 1  # empty list elements and OWS (RFC 9110 §5.6.1.2)
            continue
        m = _ETAG.match(value, pos)
        if m is None:
            return None
        tags.append((m.group(1) is not None, m.group(2)))
        pos = m.end()
    return tags


def _matches(value: str, etag: str, *, weak_ok: bool) -> bool | None:
    """Does the list in `value` match our (strong) `etag`? None when the list is malformed."""
    if value.strip(" \t") == "*":
        return True  # the representation exists
    tags = parse_etag_list(value)
    if tags is None:
        return None
    # RFC 9110 §8.8.3.2: strong comparison needs both tags strong; weak compares opaque-tags only.
    return any(tag == etag and (weak_ok or not weak) for weak, tag in tags)


_DATE_FORMATS = (
    "%a, %d %b %Y %H:%M:%S GMT",   # IMF-fixdate (preferred)
    "%A, %d-%b-%y %H:%M:%S GMT",   # obsolete RFC 850 format
    "%a %b %d %H:%M:%S %Y",        # obsolete asctime() format
)


def parse_http_date(value: str) -> int | None:
    """An HTTP-date (RFC 9110 §5.6.7, all three formats) → Unix seconds, or None if invalid."""
    text = " ".join(value.split())
    if len(text) > 40:
        return None
    for fmt in _DATE_FORMATS:
        try:
            t = strptime(text, fmt)  # %y maps 69-99 to 19xx, 00-68 to 20xx: years in the past
        except ValueError:
            continue
        return timegm((t.tm_year, t.tm_mon, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec, 0, 0, 0))
    return None


def format_http_date(seconds: float) -> str:
    """Unix seconds → IMF-fixdate, e.g. ``Wed, 25 Nov 2026 17:00:00 GMT``."""
    return formatdate(seconds, usegmt=True)


def evaluate(conditions: Conditions, etag: str, last_modified: int, *, is_get_or_head: bool = True
             ) -> Precondition:
    """RFC 9110 §13.2.2 steps 1–4 for a file with strong `etag` and `last_modified` (Unix seconds)."""
    if conditions.if_match is not None:
        # §13.1.1: strong comparison; a malformed list matches nothing.
        if not _matches(conditions.if_match, etag, weak_ok=False):
            return Precondition.PRECONDITION_FAILED
    elif conditions.if_unmodified_since is not None:
        date = parse_http_date(conditions.if_unmodified_since)
        if date is not None and last_modified > date:
            return Precondition.PRECONDITION_FAILED
    if conditions.if_none_match is not None:
        # §13.1.2: weak comparison; a match means "not modified" for GET/HEAD, 412 otherwise.
        if _matches(conditions.if_none_match, etag, weak_ok=True):
            return Precondition.NOT_MODIFIED if is_get_or_head else Precondition.PRECONDITION_FAILED
    elif conditions.if_modified_since is not None and is_get_or_head:
        date = parse_http_date(conditions.if_modified_since)
        if date is not None and last_modified <= date:
            return Precondition.NOT_MODIFIED
    return Precondition.PROCEED


def if_range_holds(value: str, etag: str, last_modified: int) -> bool:
    """RFC 9110 §13.1.5: true when the Range may be applied.

    An entity-tag matches only by strong comparison (a weak tag never matches); an HTTP-date
    matches only when it equals Last-Modified exactly. Anything else is false (send 200, full).
    """
    value = value.strip(" \t")
    if value.startswith(('"', "W/")):
        tags = parse_etag_list(value)
        return tags is not None and len(tags) == 1 and tags[0] == (False, etag)
    date = parse_http_date(value)
    return date is not None and date == last_modified
