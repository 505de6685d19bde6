"""oca.ranges: RFC 9110 §14 range parsing and planning — table tests and properties."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from oca.ranges import (
    FULL,
    UNSATISFIABLE,
    ByteRange,
    Ignored,
    Multi,
    Partial,
    coalesce,
    multipart_body,
    parse_range_set,
    plan_range,
)

R = ByteRange

CASES = [
    # header, size, expected
    (None, 100, FULL),
    ("bytes=0-9", 100, Partial(R(0, 9))),
    ("bytes=10-", 100, Partial(R(10, 99))),
    ("bytes=-10", 100, Partial(R(90, 99))),
    ("bytes=-500", 100, Partial(R(0, 99))),            # suffix longer than the file = whole file
    ("bytes=90-200", 100, Partial(R(90, 99))),         # end clamped to EOF
    ("bytes=99-99", 100, Partial(R(99, 99))),
    ("bytes=100-", 100, UNSATISFIABLE),
    ("bytes=100-200", 100, UNSATISFIABLE),
    ("bytes=-0", 100, UNSATISFIABLE),                  # RFC 9110 §14.1.2: suffix-length 0
    ("bytes=0-0", 0, UNSATISFIABLE),                   # any range on an empty file
    ("bytes=-5", 0, UNSATISFIABLE),
    ("bytes=0-", 0, UNSATISFIABLE),
    ("BYTES=0-9", 100, Partial(R(0, 9))),              # range unit is case-insensitive
    ("bytes = 0-9", 100, Partial(R(0, 9))),
    ("bytes=0-9, 20-29", 100, Multi((R(0, 9), R(20, 29)))),
    ("bytes=20-29,0-9", 100, Multi((R(20, 29), R(0, 9)))),   # request order kept
    ("bytes=0-9,10-19", 100, Partial(R(0, 19))),             # adjacent: coalesced
    ("bytes=0-9,5-14", 100, Partial(R(0, 14))),              # overlapping: coalesced
    ("bytes=50-59,0-9,5-14", 100, Multi((R(50, 59), R(0, 14)))),
    ("bytes=0-9,200-300", 100, Partial(R(0, 9))),            # unsatisfiable parts dropped
    ("bytes=200-,300-", 100, UNSATISFIABLE),
    ("bytes=0-9,,20-29", 100, Multi((R(0, 9), R(20, 29)))),  # empty list elements ignored
    ("bytes=0-18446744073709551616", 100, Partial(R(0, 99))),  # beyond 64 bits: clamped
    ("bytes=0-" + "9" * 40, 100, Partial(R(0, 99))),
    ("bytes=" + "9" * 40 + "-", 100, UNSATISFIABLE),
    ("bytes=-" + "9" * 40, 100, Partial(R(0, 99))),
    # syntactically invalid → ignored (200)
    ("bytes=9-0", 100, Ignored("syntax")),             # last < first
    ("bytes=abc", 100, Ignored("syntax")),
    ("bytes=", 100, Ignored("syntax")),
    ("bytes=-", 100, Ignored("syntax")),
    ("bytes=1", 100, Ignored("syntax")),
    ("bytes=1-2-3", 100, Ignored("syntax")),
    ("bytes=+1-2", 100, Ignored("syntax")),
    ("bytes=0x10-20", 100, Ignored("syntax")),
    ("bytes 0-9", 100, Ignored("syntax")),
    ("0-9", 100, Ignored("syntax")),
    ("items=0-9", 100, Ignored("unit")),
    ("bytes=0-9,9-0", 100, Ignored("syntax")),
    # abuse limits → ignored: never amplify (the response is at most the file)
    ("bytes=" + ",".join(f"{i}-{i}" for i in range(0, 34, 2)), 100, Ignored("too_many")),
    ("bytes=0-99,0-99", 100, Ignored("amplification")),
    ("bytes=0-60,40-99", 100, Ignored("amplification")),
    ("bytes=-60,0-50", 100, Ignored("amplification")),
]


@pytest.mark.parametrize(("header", "size", "expected"), CASES)
def test_plan_table(header: str | None, size: int, expected: object) -> None:
    assert plan_range(header, size) == expected


def test_max_ranges_is_configurable() -> None:
    header = "bytes=0-0,2-2,4-4"
    assert plan_range(header, 100, max_ranges=2) == Ignored("too_many")
    assert plan_range(header, 100, max_ranges=3) == Multi((R(0, 0), R(2, 2), R(4, 4)))


def test_exactly_max_ranges_is_allowed() -> None:
    header = "bytes=" + ",".join(f"{i}-{i}" for i in range(0, 32, 2))  # 16
    plan = plan_range(header, 100)
    assert isinstance(plan, Multi) and len(plan.ranges) == 16


def test_parse_stops_early_on_huge_headers() -> None:
    assert parse_range_set("bytes=" + "0-0," * 100000, 16) == "too_many"


def test_kinds_for_metrics() -> None:
    assert {FULL.kind, UNSATISFIABLE.kind, Partial(R(0, 1)).kind, Multi(()).kind, Ignored("x").kind} == {
        "none", "unsatisfiable", "single", "multi", "ignored"}


def test_multipart_layout_is_exact() -> None:
    body = multipart_body((R(0, 9), R(20, 29)), 100, "video/mp4", "BOUND")
    assert body.content_type == "multipart/byteranges; boundary=BOUND"
    assert body.parts[0][0] == b"--BOUND\r\nContent-Type: video/mp4\r\nContent-Range: bytes 0-9/100\r\n\r\n"
    assert body.parts[1][0] == b"\r\n--BOUND\r\nContent-Type: video/mp4\r\nContent-Range: bytes 20-29/100\r\n\r\n"
    assert body.trailer == b"\r\n--BOUND--\r\n"
    assert body.content_length == sum(len(h) + r.length for h, r in body.parts) + len(body.trailer)


# -- properties -----------------------------------------------------------------------------------
sizes = st.integers(min_value=0, max_value=10_000)
positions = st.integers(min_value=0, max_value=20_000)


@st.composite
def range_specs(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["int", "open", "suffix"]))
    if kind == "suffix":
        return f"-{draw(positions)}"
    first = draw(positions)
    if kind == "open":
        return f"{first}-"
    return f"{first}-{first + draw(st.integers(min_value=0, max_value=20_000))}"


@given(size=sizes, specs=st.lists(range_specs(), min_size=1, max_size=20))
def test_plan_never_amplifies_and_stays_in_file(size: int, specs: list[str]) -> None:
    plan = plan_range("bytes=" + ",".join(specs), size)
    if isinstance(plan, Partial):
        ranges = (plan.range,)
    elif isinstance(plan, Multi):
        ranges = plan.ranges
        assert len(ranges) >= 2
    else:
        assert plan == UNSATISFIABLE or isinstance(plan, Ignored)
        return
    assert all(0 <= r.first <= r.last < size for r in ranges)
    assert sum(r.length for r in ranges) <= size
    ordered = sorted(ranges, key=lambda r: r.first)
    assert all(a.last + 1 < b.first for a, b in zip(ordered, ordered[1:], strict=False))  # disjoint, not adjacent


@given(size=sizes, spec=range_specs())
def test_single_spec_fast_path_matches_the_general_parser(size: int, spec: str) -> None:
    """The one-range fast path and the general parser agree on every single range-spec."""
    header = "bytes=" + spec
    general = parse_range_set(" " + header, 16)  # the leading space bypasses the fast path
    fast = plan_range(header, size)
    slow = plan_range(" " + header, size)
    assert fast == slow
    assert isinstance(general, list) and len(general) == 1


@given(size=st.integers(min_value=1, max_value=5000), specs=st.lists(range_specs(), min_size=1, max_size=16))
def test_plan_covers_exactly_the_requested_satisfiable_bytes(size: int, specs: list[str]) -> None:
    plan = plan_range("bytes=" + ",".join(specs), size)
    if not isinstance(plan, Partial | Multi):
        return
    wanted: set[int] = set()
    for spec in specs:
        a, _, b = spec.partition("-")
        if not a:
            n = int(b)
            wanted.update(range(max(0, size - n), size) if n else ())
        elif int(a) < size:
            wanted.update(range(int(a), min(size, int(b) + 1) if b else size))
    got: set[int] = set()
    for r in (plan.range,) if isinstance(plan, Partial) else plan.ranges:
        got.update(range(r.first, r.last + 1))
    assert got == wanted


@given(st.text(max_size=60))
def test_arbitrary_headers_never_raise(header: str) -> None:
    plan_range(header, 1000)


@given(st.lists(st.tuples(st.integers(0, 100), st.integers(0, 100)), min_size=1, max_size=10))
def test_coalesce_is_a_disjoint_cover(pairs: list[tuple[int, int]]) -> None:
    ranges = [R(min(a, b), max(a, b)) for a, b in pairs]
    merged = coalesce(ranges)
    covered = {i for r in ranges for i in range(r.first, r.last + 1)}
    assert {i for r in merged for i in range(r.first, r.last + 1)} == covered
    assert sum(r.length for r in merged) == len(covered)
