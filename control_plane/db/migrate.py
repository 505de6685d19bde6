"""Versioned schema migrations: numbered steps applied in order, each once, recorded in a table.

A step is a module ``control_plane/db/migrations/mNNNN_short_name.py`` defining
``upgrade(conn: sqlalchemy.Connection) -> None`` (synchronous; it runs inside the migration's
transaction through `run_sync`). To change the schema, ADD a module with the next number — never
edit an applied one — and update `schema.py` to the new shape. Numbers must be unique; a gap is
allowed (two parts may reserve numbers independently) but the order is always by number.

`upgrade(engine)` applies what is missing, each step in its own transaction together with its row
in ``schema_migrations``. On PostgreSQL an advisory lock serialises concurrent upgraders (two
replicas starting at once); SQLite serialises writers by itself.
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
import re
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Column, Connection, Float, Integer, MetaData, String, Table, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from control_plane.db import migrations as migrations_package

log = logging.getLogger("oca.control.migrate")
_NAME = re.compile(r"m(\d{4})_([a-z0-9_]+)")
_LOCK_ID = 0x0CA_C0_47  # arbitrary constant for pg_advisory_xact_lock

_history_md = MetaData()
schema_migrations = Table(
    "schema_migrations", _history_md,
    Column("number", Integer, primary_key=True),
    Column("name", String(200), nullable=False),
    Column("applied_at", Float, nullable=False),
)


@dataclass(frozen=True)
class Migration:
    number: int
    name: str
    upgrade: Callable[[Connection], None]


class MigrationError(Exception):
    pass


def discover() -> list[Migration]:
    """All steps in `control_plane/db/migrations`, ordered by number; duplicates are an error."""
    steps: dict[int, Migration] = {}
    for info in pkgutil.iter_modules(migrations_package.__path__):
        m = _NAME.fullmatch(info.name)
        if not m:
            continue
        module = importlib.import_module(f"{migrations_package.__name__}.{info.name}")
        number = int(m.group(1))
        if number in steps:
            raise MigrationError(f"migration number {number} is used twice: {steps[number].name}, {info.name}")
        steps[number] = Migration(number, m.group(2), module.upgrade)
    return [steps[n] for n in sorted(steps)]


async def applied(engine: AsyncEngine) -> dict[int, str]:
    async with engine.begin() as conn:
        await conn.run_sync(_history_md.create_all)
        rows = (await conn.execute(select(schema_migrations.c.number, schema_migrations.c.name))).all()
    return {n: name for n, name in rows}


async def pending(engine: AsyncEngine) -> list[Migration]:
    done = await applied(engine)
    return [m for m in discover() if m.number not in done]


async def upgrade(engine: AsyncEngine, *, clock: Callable[[], float] = time.time) -> list[Migration]:
    """Apply every missing step in order; return the steps applied (empty when up to date)."""
    done_now: list[Migration] = []
    await applied(engine)  # creates the history table
    for step in discover():
        async with engine.begin() as conn:
            if engine.dialect.name == "postgresql":
                await conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _LOCK_ID})
            exists = (await conn.execute(
                select(schema_migrations.c.number).where(schema_migrations.c.number == step.number))).first()
            if exists:
                continue
            log.info("applying migration", extra={"fields": {"number": step.number, "name": step.name}})
            await conn.run_sync(step.upgrade)
            await conn.execute(schema_migrations.insert().values(
                number=step.number, name=step.name, applied_at=clock()))
        done_now.append(step)
    return done_now
