"""The fill window and the rate schedule, with explicit times (no clock)."""

from collections import Counter
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fill.window import Closed, FillWindow, Open, RatePeriod, RateSchedule, appliance_jitter, parse_clock

TZ = ZoneInfo("Europe/Berlin")


def at(h, m=0, day=25):
    return datetime(2026, 11, day, h, m, tzinfo=TZ)


W = FillWindow.build(time(2), time(14))

CASES = [
    (at(1, 59), Closed(at(2))),
    (at(2), Open(at(14))),
    (at(13, 59), Open(at(14))),
    (at(14), Closed(at(2, day=26))),
    (at(23, 30), Closed(at(2, day=26))),
]


@pytest.mark.parametrize("now,expected", CASES)
def test_day_window(now, expected):
    assert W.state(now) == expected


@pytest.mark.parametrize("now,expected", [
    (at(21), Closed(at(22))),
    (at(23), Open(at(6, day=26))),
    (at(0, 30), Open(at(6))),
    (at(6), Closed(at(22))),
])
def test_window_wrapping_midnight(now, expected):
    assert FillWindow.build(time(22), time(6)).state(now) == expected


def test_jitter_moves_only_the_start():
    w = FillWindow.build(time(2), time(14), jitter_s=-5400)        # -1h30
    assert w.state(at(0, 29)) == Closed(at(0, 30))
    assert w.state(at(0, 30)) == Open(at(14))
    w = FillWindow.build(time(2), time(14), jitter_s=7200)
    assert w.state(at(3)) == Closed(at(4))
    w = FillWindow.build(time(1), time(14), jitter_s=-7200)        # wraps to 23:00 the day before
    assert w.state(at(23, 30, day=24)) == Open(at(14))


def test_jitter_must_fit():
    with pytest.raises(ValueError):
        FillWindow.build(time(2), time(3), jitter_s=3600)
    with pytest.raises(ValueError):
        FillWindow.build(time(2), time(1), jitter_s=-7200)         # 23 h window + 2 h earlier


def test_always_open():
    w = FillWindow.build(time(0), time(0), jitter_s=7200)
    assert w.always_open and isinstance(w.state(at(12)), Open)


def test_appliance_jitter_is_stable_bounded_and_spread():
    assert appliance_jitter("isp1-a", 7200) == appliance_jitter("isp1-a", 7200)
    values = [appliance_jitter(f"box-{i}", 7200) for i in range(2000)]
    assert all(-7200 <= v <= 7200 for v in values)
    quarters = Counter(int((v + 7200) // 3600) for v in values)      # four 1-hour buckets
    assert all(400 < quarters[q] < 600 for q in range(4))
    assert appliance_jitter("x", 0) == 0


def test_dst_change_day():
    # 2026-03-29: Berlin clocks jump 02:00 → 03:00; the window still opens and closes that day.
    w = FillWindow.build(time(2), time(14))
    now = datetime(2026, 3, 29, 1, 0, tzinfo=TZ)
    state = w.state(now)
    assert isinstance(state, Closed)
    assert w.state(state.opens_at + timedelta(minutes=1)) == Open(datetime(2026, 3, 29, 14, tzinfo=TZ))


@pytest.mark.parametrize("text,ok", [("02:00", time(2)), ("2:30", time(2, 30)), ("23:59", time(23, 59)),
                                     ("24:00", None), ("12:60", None), ("12", None), ("1:2", None),
                                     ("ab:cd", None)])
def test_parse_clock(text, ok):
    if ok is None:
        with pytest.raises(ValueError):
            parse_clock(text)
    else:
        assert parse_clock(text) == ok


def test_rate_schedule_first_covering_period_wins():
    s = RateSchedule(200_000_000, (RatePeriod(2 * 3600, 6 * 3600, 1_000_000_000),
                                   RatePeriod(22 * 3600, 1 * 3600, None),
                                   RatePeriod(0, 12 * 3600, 5)))
    assert s.rate_bps(at(3)) == 1_000_000_000
    assert s.rate_bytes(at(3)) == 125_000_000
    assert s.rate_bps(at(23)) is None and s.rate_bytes(at(0, 30)) is None
    assert s.rate_bps(at(7)) == 5
    assert s.rate_bps(at(13)) == 200_000_000


@settings(max_examples=400, deadline=None)
@given(st.integers(0, 23), st.integers(0, 59), st.integers(0, 23), st.integers(0, 59),
       st.integers(-7200, 7200), st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31)))
def test_window_states_are_consistent(sh, sm, eh, em, jitter, naive_now):
    utc = ZoneInfo("UTC")          # no DST here: wall-clock arithmetic is exact
    try:
        w = FillWindow.build(time(sh, sm), time(eh, em), jitter_s=jitter)
    except ValueError:
        return
    now = naive_now.replace(tzinfo=utc)
    if w.always_open:
        assert isinstance(w.state(now), Open)
        return
    length = (w.end_s - w.start_s) % 86400
    match w.state(now):
        case Open(closes_at=closes):
            assert now < closes <= now + timedelta(seconds=length)
            assert isinstance(w.state(closes), Closed)
        case Closed(opens_at=opens):
            assert now < opens <= now + timedelta(days=1)
            assert w.state(opens) == Open(opens + timedelta(seconds=length))
