"""Popularity rows in SQL: additive flushes, the epoch rebase, and a rebase that lost a race."""

from __future__ import annotations

import pytest

from control_plane.db import migrate
from control_plane.db import popularity as repo
from control_plane.db.engine import create_engine

H = 3600.0


@pytest.fixture
async def engine(database_url):
    engine = create_engine(database_url, pool_size=2)
    await migrate.upgrade(engine)
    yield engine
    await engine.dispose()


async def test_views_decay_and_survive_rebase(engine):
    t0 = 1_000_000.0
    async with engine.begin() as conn:
        await repo.add_views(conn, {("DE", "t1"): 8.0, ("DE", "t2"): 1.0}, t0, H)
    async with engine.begin() as conn:
        await repo.add_views(conn, {("DE", "t1"): 2.0}, t0 + H, H)
    async with engine.connect() as conn:
        assert await repo.scores(conn, "DE", t0 + H, H) == pytest.approx({"t1": 6.0, "t2": 0.5})
    # 300 half-lives later the next flush moves the epoch; the decayed values are unchanged and
    # rows that decayed to nothing are pruned.
    later = t0 + 300 * H
    async with engine.begin() as conn:
        await repo.add_views(conn, {("DE", "t3"): 1.0}, later, H)
    async with engine.connect() as conn:
        assert await repo.epoch(conn, later) == later
        assert await repo.scores(conn, "DE", later, H) == pytest.approx({"t3": 1.0})
    async with engine.connect() as conn:
        assert await repo.scores(conn, "FR", later, H) == {}


async def test_a_rebase_that_lost_the_race_uses_the_winners_epoch(engine):
    t0 = 5_000.0
    async with engine.begin() as conn:
        await repo.add_views(conn, {("DE", "t1"): 4.0}, t0, H)
    async with engine.begin() as conn:
        assert await repo.rebase(conn, t0, t0 + H, H) == t0 + H           # the winner
    async with engine.begin() as conn:
        assert await repo.rebase(conn, t0, t0 + 2 * H, H) == t0 + H       # stale old epoch: no rescale
    async with engine.connect() as conn:
        assert await repo.scores(conn, "DE", t0 + H, H) == pytest.approx({"t1": 2.0})
