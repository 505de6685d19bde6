"""Licence logic: table tests at the start/end instants, across time zones, and the fill window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from control_plane.errors import ApiError
from control_plane.licensing import (
    Expired,
    Licence,
    NotLicensed,
    NotYet,
    Playable,
    is_playable,
    licensed_through,
    parse_licence,
    playability,
    titles_licensed_for_window,
)

START = datetime(2027, 1, 1, tzinfo=UTC).timestamp()
END = datetime(2027, 2, 1, tzinfo=UTC).timestamp()
DE = Licence("t1", "DE", START, END)
FR_OPEN = Licence("t1", "FR", START, None)
LICENCES = [DE, FR_OPEN, Licence("t2", "DE", START, END)]
CET = timezone(timedelta(hours=1))
TOKYO = timezone(timedelta(hours=9))


@pytest.mark.parametrize("title,country,at,expected", [
    ("t1", "DE", START, Playable(DE)),                                   # the start instant is included
    ("t1", "DE", START - 0.001, NotYet(START)),
    ("t1", "DE", END - 0.001, Playable(DE)),
    ("t1", "DE", END, Expired(END)),                                     # the end instant is excluded
    ("t1", "DE", END + 86400 * 365, Expired(END)),
    ("t1", "FR", END + 86400 * 365 * 50, Playable(FR_OPEN)),             # open-ended
    ("t1", "US", START + 1, NotLicensed()),
    ("t3", "DE", START + 1, NotLicensed()),
    ("t1", "unknown", START + 1, NotLicensed()),
    # The same instants written in other zones: instants are compared, not wall clocks.
    ("t1", "DE", datetime(2027, 1, 1, 1, 0, tzinfo=CET), Playable(DE)),           # = 00:00Z
    ("t1", "DE", datetime(2027, 1, 1, 0, 59, 59, tzinfo=CET), NotYet(START)),     # = 23:59:59Z the day before
    ("t1", "DE", datetime(2027, 2, 1, 9, 0, tzinfo=TOKYO), Expired(END)),         # = 00:00Z Feb 1
    ("t1", "DE", datetime(2027, 2, 1, 8, 59, 59, tzinfo=TOKYO), Playable(DE)),
])
def test_playability_table(title, country, at, expected):
    assert playability(LICENCES, title, country, at) == expected
    assert is_playable(LICENCES, title, country, at) == isinstance(expected, Playable)


def test_naive_datetime_is_refused():
    with pytest.raises(ValueError):
        playability(LICENCES, "t1", "DE", datetime(2027, 1, 5))


@pytest.mark.parametrize("start,window,expected", [
    (START, 0, True),
    (START - 1, 10, False),                 # starts inside the window
    (END - 3600, 3599, True),               # last instant of the window is before the end
    (END - 3600, 3600, False),              # the window reaches the end instant: dropped
    (END, 0, False),
])
def test_licensed_through(start, window, expected):
    assert licensed_through(DE, start, start + window) is expected


def test_titles_for_window_per_region():
    assert titles_licensed_for_window(LICENCES, "DE", START, 86400) == {"t1", "t2"}
    assert titles_licensed_for_window(LICENCES, "DE", END - 3600, 86400) == frozenset()
    assert titles_licensed_for_window(LICENCES, "FR", END + 10**8, 86400) == {"t1"}


@pytest.mark.parametrize("body,field", [
    ({"region": "DE"}, "start"),
    ({"region": "DEU", "start": "2027-01-01T00:00:00Z"}, "region"),
    ({"region": "DE", "start": "2027-01-01 00:00"}, "start"),
    ({"region": "DE", "start": "2027-01-01T00:00:00Z", "end": "2027-01-01T00:00:00Z"}, "end"),
    ({"region": "DE", "start": "2027-01-01T00:00:00Z", "exclusive": 1}, "exclusive"),
])
def test_parse_licence_errors(body, field):
    with pytest.raises(ApiError) as e:
        parse_licence("t1", body)
    assert e.value.status == 422 and e.value.field == field


def test_parse_licence_offsets():
    lic = parse_licence("t1", {"region": "JP", "start": "2027-01-01T09:00:00+09:00", "end": "2027-03-01T00:00:00z"})
    assert (lic.start, lic.region, lic.exclusive) == (START, "JP", False)
    with pytest.raises(ApiError):
        parse_licence("t1", {"region": "DE", "start": "2027-01-01T00:00:00Z"}, region="FR")
