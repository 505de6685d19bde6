"""Byte ranges (RFC 9110 §14): parse a ``Range`` header against a file size into a closed plan.

Pure: no I/O. The protocol shell calls `plan_range` and turns the outcome into a response:

- `Full`           no Range header (or Range does not apply: HEAD, If-Range false) → 200, whole file
- `Ignored`        a Range header we deliberately do not honour → 200, whole file; `reason` is for
                   metrics and the log: ``syntax`` (invalid per §14.1.1), ``unit`` (not ``bytes``),
                   ``too_many`` (more range-specs than the limit), ``amplification`` (the requested
                   ranges add up to more than the file)
- `Partial`        one satisfiable range (possibly several coalesced) → 206 with Content-Range
- `Multi`          several disjoint satisfiable ranges → 206 multipart/byteranges
- `Unsatisfiable`  syntactically valid, nothing satisfiable (any range on an empty file) → 416

Abuse limits — the choice and why: a header with more range-specs than ``max_ranges``, or whose
satisfiable ranges add up to more bytes than the file, is *ignored* (200, whole file) rather than
rejected with 416. RFC 9110 §14.2 lets a server ignore such a Range ("MAY ignore or reject a Range
header field that contains ... many small ranges or overlapping ranges"). Ignoring never amplifies:
the response is at most the size of the file (the classic multi-range attack, CVE-2011-3192, sent
the same bytes many times over), and a legitimate but odd client still gets a correct, usable
answer instead of an error it may not retry. Overlapping and adjacent ranges that stay within the
limits are coalesced (§14.2 allows it), so a multipart body never repeats a byte either.

Huge positions (beyond 64 bits) are clamped like any position past EOF: a huge last-pos ends at
the last byte, a huge first-pos is unsatisfiable, a huge suffix-length means the whole file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import NamedTuple

DEFAULT_MAX_RANGES = 16
_HUGE = 1 << 64          # stands for any number with more digits than a 64-bit position has
_MAX_DIGITS = 20
_DIGITS = frozenset("0123456789")
_OWS = " \t"
_ONE_RANGE = re.compile(r"bytes=([0-9]{1,18})-([0-9]{0,18})\Z")  # the common case, parsed in one step


class ByteRange(NamedTuple):
    """An inclusive byte range ``first..last`` within a file (RFC 9110 §14.1.1 semantics).

    A NamedTuple (immutable, and built at C speed: one is made for every range request)."""

    first: int
    last: int

    @property
    def length(self) -> int:
        return self.last - self.first + 1

    def content_range(self, size: int) -> str:
        return f"bytes {self.first}-{self.last}/{size}"


@dataclass(frozen=True, slots=True)
class Full:
    """No Range to apply: send the whole file with 200."""

    kind = "none"


@dataclass(frozen=True, slots=True)
class Ignored:
    """A Range header that is not honoured (see module docstring): 200 with the whole file."""

    reason: str
    kind = "ignored"


@dataclass(frozen=True, slots=True)
class Partial:
    """One range: 206 with ``Content-Range: bytes first-last/size``."""

    range: ByteRange
    kind = "single"


@dataclass(frozen=True, slots=True)
class Multi:
    """Two or more disjoint ranges, in request order: 206 multipart/byteranges."""

    ranges: tuple[ByteRange, ...]
    kind = "multi"


@dataclass(frozen=True, slots=True)
class Unsatisfiable:
    """Nothing satisfiable: 416 with ``Content-Range: bytes */size`` (RFC 9110 §15.5.17)."""

    kind = "unsatisfiable"


RangePlan = Full | Ignored | Partial | Multi | Unsatisfiable

FULL = Full()
UNSATISFIABLE = Unsatisfiable()


class _Syntax(ValueError):
    pass


def _number(text: str) -> int:
    if not text or not _DIGITS.issuperset(text):
        raise _Syntax(text)
    # Never hand a huge digit string to int(): it is slow and Python caps it (sys.int_info).
    return int(text) if len(text) <= _MAX_DIGITS else _HUGE


def parse_range_set(value: str, max_specs: int) -> list[tuple[int | None, int | None]] | str:
    """Parse ``bytes=...`` into range-specs ``(first, last)``; suffix ranges are ``(None, length)``.

    Returns the list, or a reason string (``syntax``, ``unit``, ``too_many``) when the header is
    to be ignored. Parsing stops after ``max_specs + 1`` specs so a huge header costs little.
    """
    unit, eq, rest = value.partition("=")
    if not eq:
        return "syntax"
    unit = unit.strip(_OWS)
    if unit.lower() != "bytes":
        # RFC 9110 §14.2: a range unit the server does not support → ignore the header.
        return "unit" if unit and " " not in unit else "syntax"
    specs: list[tuple[int | None, int | None]] = []
    for element in rest.split(","):
        element = element.strip(_OWS)
        if not element:
            continue  # RFC 9110 §5.6.1.2: empty list elements are accepted and ignored
        if len(specs) == max_specs:
            return "too_many"
        first, dash, last = element.partition("-")
        if not dash:
            return "syntax"
        try:
            if not first:
                specs.append((None, _number(last)))
                continue
            a = _number(first)
            b = _number(last) if last else None
        except _Syntax:
            return "syntax"
        if b is not None and b < a:
            return "syntax"  # RFC 9110 §14.1.1: an int-range with last-pos < first-pos is invalid
        specs.append((a, b))
    if not specs:
        return "syntax"
    return specs


def _resolve(spec: tuple[int | None, int | None], size: int) -> ByteRange | None:
    """One range-spec against the size (RFC 9110 §14.1.2), or None when it is unsatisfiable."""
    first, last = spec
    if size == 0:
        return None
    if first is None:
        assert last is not None
        if last == 0:
            return None
        return ByteRange(max(0, size - last), size - 1)  # a suffix longer than the file = whole file
    if first >= size:
        return None
    return ByteRange(first, size - 1 if last is None or last >= size else last)


def coalesce(ranges: list[ByteRange]) -> tuple[ByteRange, ...]:
    """Merge overlapping and adjacent ranges; keep the order in which each group first appeared.

    RFC 9110 §14.2: parts go "in the same order that the corresponding range-spec appeared ...
    excluding those ranges that were ... coalesced into other ranges".
    """
    order = sorted(range(len(ranges)), key=lambda i: (ranges[i].first, ranges[i].last))
    groups: list[list[int]] = []  # [first, last, earliest request position]
    for i in order:
        r = ranges[i]
        if groups and r.first <= groups[-1][1] + 1:
            g = groups[-1]
            g[1] = max(g[1], r.last)
            g[2] = min(g[2], i)
        else:
            groups.append([r.first, r.last, i])
    groups.sort(key=lambda g: g[2])
    return tuple(ByteRange(g[0], g[1]) for g in groups)


def plan_range(header: str | None, size: int, *, max_ranges: int = DEFAULT_MAX_RANGES) -> RangePlan:
    """Decide how to answer a GET with this ``Range`` header value (None: no header) on `size` bytes."""
    if header is None:
        return FULL
    m = _ONE_RANGE.match(header)
    if m is not None:
        a = int(m.group(1))
        b = int(m.group(2)) if m.group(2) else None
        if b is not None and b < a:
            return Ignored("syntax")
        r = _resolve((a, b), size)
        return Partial(r) if r is not None else UNSATISFIABLE
    specs = parse_range_set(header, max_ranges)
    if isinstance(specs, str):
        return Ignored(specs)
    satisfiable = [r for r in (_resolve(s, size) for s in specs) if r is not None]
    if not satisfiable:
        return UNSATISFIABLE
    if len(satisfiable) > 1 and sum(r.length for r in satisfiable) > size:
        return Ignored("amplification")
    merged = coalesce(satisfiable) if len(satisfiable) > 1 else (satisfiable[0],)
    if len(merged) == 1:
        return Partial(merged[0])
    return Multi(merged)


@dataclass(frozen=True, slots=True)
class MultipartBody:
    """The layout of a multipart/byteranges body (RFC 9110 §14.6): part headers, ranges, trailer."""

    boundary: str
    parts: tuple[tuple[bytes, ByteRange], ...]   # (delimiter + part header bytes, file range)
    trailer: bytes                               # closing delimiter
    content_length: int

    @property
    def content_type(self) -> str:
        return f"multipart/byteranges; boundary={self.boundary}"


def multipart_body(ranges: tuple[ByteRange, ...], size: int, content_type: str,
                   boundary: str) -> MultipartBody:
    """Lay out the body for `ranges`; the shell writes each header then sends the range's bytes."""
    parts = []
    total = 0
    for n, r in enumerate(ranges):
        lead = "--" if n == 0 else "\r\n--"
        head = (f"{lead}{boundary}\r\nContent-Type: {content_type}\r\n"
                f"Content-Range: {r.content_range(size)}\r\n\r\n").encode("ascii")
        parts.append((head, r))
        total += len(head) + r.length
    trailer = f"\r\n--{boundary}--\r\n".encode("ascii")
    return MultipartBody(boundary, tuple(parts), trailer, total + len(trailer))
