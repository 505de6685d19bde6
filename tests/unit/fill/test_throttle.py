"""The token bucket on a fake clock: a minute of fill at the cap takes a minute, within ±5 %."""

import asyncio

import pytest

from fill.throttle import TokenBucket


class FakeClock:
    def __init__(self):
        self.now = 1000.0
        self.sleeps = 0

    def __call__(self):
        return self.now

    async def sleep(self, d):
        self.sleeps += 1
        self.now += max(d, 0)
        await asyncio.sleep(0)


def bucket(rate, **kw):
    clock = FakeClock()
    return TokenBucket(rate, clock=clock, sleep=clock.sleep, **kw), clock


async def consume(tb, total, chunk):
    sent = 0
    while sent < total:
        n = min(chunk, total - sent)
        await tb.acquire(n)
        sent += n


@pytest.mark.parametrize("workers,chunk", [(1, 65536), (4, 262144), (16, 1 << 20), (3, 77777)])
async def test_minute_at_the_cap_takes_a_minute(workers, chunk):
    rate = 25_000_000                       # 200 Mbit/s
    tb, clock = bucket(rate)
    start = clock.now
    per = rate * 60 // workers
    await asyncio.gather(*(consume(tb, per, chunk) for _ in range(workers)))
    elapsed = clock.now - start
    achieved = tb.granted / elapsed
    assert tb.granted == per * workers
    assert abs(achieved - rate) / rate < 0.05
    # the bucket starts empty: no excess at all
    assert achieved <= rate * 1.0001


async def test_starts_empty_and_a_chunk_larger_than_burst_goes_into_debt():
    tb, clock = bucket(1000, burst=100)
    await tb.acquire(100)                   # no credit at start: 0.1 s
    assert clock.now == pytest.approx(1000.1)
    clock.now += 0.1                        # 0.1 s idle: one burst earned
    await tb.acquire(600)                   # 100 from the burst, 500 of debt: 0.5 s
    assert clock.now == pytest.approx(1000.7)


async def test_idle_time_does_not_accumulate_beyond_burst():
    tb, clock = bucket(1000, burst=100)
    clock.now += 3600                       # an hour idle earns one burst, no more
    await tb.acquire(100)
    assert clock.now == pytest.approx(1000 + 3600)
    await tb.acquire(1000)
    assert clock.now == pytest.approx(1000 + 3600 + 1.0)


async def test_unlimited_counts_without_waiting():
    tb, clock = bucket(None)
    await tb.acquire(10**12)
    assert tb.granted == 10**12 and clock.sleeps == 0


async def test_rate_change_applies_from_then_on():
    tb, clock = bucket(1000, burst=1)
    t0 = clock.now
    await tb.acquire(1000)                  # 1 s at 1000 B/s
    assert clock.now - t0 == pytest.approx(1.0)
    t1 = clock.now
    tb.set_rate(4000)
    await tb.acquire(4000)                  # 1 s at 4000 B/s
    assert clock.now - t1 == pytest.approx(1.0, rel=0.01)
    tb.set_rate(None)
    await tb.acquire(10**9)
    assert clock.now - t1 == pytest.approx(1.0, rel=0.01)


async def test_waiters_are_served_in_order():
    tb, clock = bucket(100, burst=1)
    order = []

    async def w(name):
        await tb.acquire(100)
        order.append(name)

    await asyncio.gather(*(w(i) for i in range(5)))
    assert order == [0, 1, 2, 3, 4]
    assert clock.now == pytest.approx(1005.0)


def test_bad_rate_rejected():
    with pytest.raises(ValueError):
        TokenBucket(0)
