"""Numbered migrations: applied once, in order, idempotent, and the result matches schema.py."""

from __future__ import annotations

import asyncio

from sqlalchemy import inspect

from control_plane.db import migrate
from control_plane.db.engine import create_engine
from control_plane.db.schema import metadata


async def test_upgrade_is_idempotent_and_matches_schema(database_url):
    engine = create_engine(database_url, pool_size=2)
    try:
        steps = migrate.discover()
        assert [s.number for s in steps] == sorted(s.number for s in steps) and steps[0].number == 1
        applied = await migrate.upgrade(engine)
        assert [s.number for s in applied] == [s.number for s in steps]
        assert await migrate.upgrade(engine) == []
        assert await migrate.pending(engine) == []

        def columns(conn):
            insp = inspect(conn)
            return {t: {c["name"] for c in insp.get_columns(t)} for t in insp.get_table_names()}
        async with engine.connect() as conn:
            found = await conn.run_sync(columns)
        for table in metadata.sorted_tables:
            assert table.name in found, table.name
            assert found[table.name] == {c.name for c in table.columns}, table.name
    finally:
        await engine.dispose()


async def test_concurrent_upgrades_apply_each_step_once(database_url):
    engines = [create_engine(database_url, pool_size=2) for _ in range(3)]
    try:
        results = await asyncio.gather(*(migrate.upgrade(e) for e in engines), return_exceptions=True)
        # SQLite may refuse a racing writer with "database is locked"/"table exists"; a retry must succeed.
        for e, r in zip(engines, results, strict=True):
            if isinstance(r, Exception):
                await migrate.upgrade(e)
        applied = await migrate.applied(engines[0])
        assert sorted(applied) == [s.number for s in migrate.discover()]
        if database_url.startswith("postgresql"):
            assert sum(len(r) for r in results if not isinstance(r, Exception)) == len(migrate.discover())
    finally:
        for e in engines:
            await e.dispose()


async def test_server_refuses_an_unmigrated_database(database_url, tmp_path):
    from dataclasses import replace

    import pytest

    from tests.integration.control_plane.conftest import config_for, start_control

    config = config_for(database_url, tmp_path)
    config = replace(config, database=replace(config.database, migrate_on_start=False))
    with pytest.raises(RuntimeError, match="oca-control db upgrade"):
        await start_control(config)
