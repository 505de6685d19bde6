"""oca.conditional: RFC 9110 §13 preconditions in §13.2.2 order, and If-Range."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from oca.conditional import (
    Conditions,
    Precondition,
    evaluate,
    format_http_date,
    if_range_holds,
    parse_etag_list,
    parse_http_date,
)

ETAG = '"abc123"'
LM = 784111777                      # Sun, 06 Nov 1994 08:49:37 GMT
LM_TEXT = "Sun, 06 Nov 1994 08:49:37 GMT"
BEFORE = "Sat, 05 Nov 1994 08:49:37 GMT"
AFTER = "Mon, 07 Nov 1994 08:49:37 GMT"
P, NM, PF = Precondition.PROCEED, Precondition.NOT_MODIFIED, Precondition.PRECONDITION_FAILED

CASES = [
    (Conditions(), P),
    # If-None-Match: weak comparison → 304 on match
    (Conditions(if_none_match=ETAG), NM),
    (Conditions(if_none_match='W/"abc123"'), NM),
    (Conditions(if_none_match='"other", "abc123"'), NM),
    (Conditions(if_none_match='"other"'), P),
    (Conditions(if_none_match="*"), NM),
    (Conditions(if_none_match="garbage"), P),
    # If-Modified-Since
    (Conditions(if_modified_since=LM_TEXT), NM),
    (Conditions(if_modified_since=AFTER), NM),
    (Conditions(if_modified_since=BEFORE), P),
    (Conditions(if_modified_since="not a date"), P),
    # If-None-Match present → If-Modified-Since ignored (§13.1.3)
    (Conditions(if_none_match='"other"', if_modified_since=AFTER), P),
    (Conditions(if_none_match=ETAG, if_modified_since=BEFORE), NM),
    # If-Match: strong comparison → 412 when no match
    (Conditions(if_match=ETAG), P),
    (Conditions(if_match='"x", "abc123"'), P),
    (Conditions(if_match="*"), P),
    (Conditions(if_match='W/"abc123"'), PF),       # weak never matches strongly
    (Conditions(if_match='"other"'), PF),
    (Conditions(if_match="garbage"), PF),
    # If-Unmodified-Since
    (Conditions(if_unmodified_since=LM_TEXT), P),
    (Conditions(if_unmodified_since=AFTER), P),
    (Conditions(if_unmodified_since=BEFORE), PF),
    (Conditions(if_unmodified_since="bogus"), P),
    # If-Match present → If-Unmodified-Since ignored (§13.1.4)
    (Conditions(if_match=ETAG, if_unmodified_since=BEFORE), P),
    # step 1 before step 3: If-Match fails → 412 even though If-None-Match would say 304
    (Conditions(if_match='"other"', if_none_match=ETAG), PF),
    (Conditions(if_unmodified_since=BEFORE, if_none_match=ETAG), PF),
    (Conditions(if_match=ETAG, if_none_match=ETAG), NM),
]


@pytest.mark.parametrize(("conditions", "expected"), CASES)
def test_evaluate_order(conditions: Conditions, expected: Precondition) -> None:
    assert evaluate(conditions, ETAG, LM) is expected


def test_if_none_match_on_other_methods_is_412() -> None:
    assert evaluate(Conditions(if_none_match=ETAG), ETAG, LM, is_get_or_head=False) is PF
    assert evaluate(Conditions(if_modified_since=AFTER), ETAG, LM, is_get_or_head=False) is P


IF_RANGE = [
    (ETAG, True),
    ('W/"abc123"', False),        # a weak validator never matches
    ('"other"', False),
    (LM_TEXT, True),              # exact Last-Modified
    (AFTER, False),               # a later date is not an exact match
    (BEFORE, False),
    ("garbage", False),
    ('"abc123", "x"', False),     # If-Range holds one validator
    ("", False),
]


@pytest.mark.parametrize(("value", "expected"), IF_RANGE)
def test_if_range(value: str, expected: bool) -> None:
    assert if_range_holds(value, ETAG, LM) is expected


@pytest.mark.parametrize("text", [
    "Sun, 06 Nov 1994 08:49:37 GMT",      # IMF-fixdate
    "Sunday, 06-Nov-94 08:49:37 GMT",     # RFC 850
    "Sun Nov  6 08:49:37 1994",           # asctime
])
def test_three_date_formats(text: str) -> None:
    assert parse_http_date(text) == LM


@pytest.mark.parametrize("text", ["", "yesterday", "Sun, 06 Nov 1994 08:49:37", "Sun, 32 Nov 1994 08:49:37 GMT",
                                  "x" * 200])
def test_invalid_dates(text: str) -> None:
    assert parse_http_date(text) is None


@given(st.integers(min_value=0, max_value=4_000_000_000))
def test_date_round_trip(seconds: int) -> None:
    assert parse_http_date(format_http_date(seconds)) == seconds


def test_etag_list_parsing() -> None:
    assert parse_etag_list('"a", W/"b" ,, "c,d"') == [(False, '"a"'), (True, '"b"'), (False, '"c,d"')]
    assert parse_etag_list('"a" "b"') is None
    assert parse_etag_list("a") is None


@given(st.text(max_size=40), st.text(max_size=40), st.text(max_size=40), st.text(max_size=40))
def test_arbitrary_headers_never_raise(a: str, b: str, c: str, d: str) -> None:
    evaluate(Conditions(a, b, c, d), ETAG, LM)
    if_range_holds(a, ETAG, LM)
