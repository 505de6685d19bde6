"""Fixtures for the control plane's integration tests: a real PostgreSQL cluster (session), a
database URL parametrised over SQLite and PostgreSQL, and a control-plane server on a loopback
port with an injected clock and an operator token."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from control_plane.app import FLUSHER, create_app
from control_plane.config import AuthConfig, ControlConfig
from control_plane.context import CONTEXT
from tests.integration.control_plane.pgcluster import PgCluster

OPERATOR_TOKEN = "operator-token-for-tests-0123456789abcdef"
T0 = 1_800_000_000.0          # 2027-01-15T08:00:00Z


@pytest.fixture(scope="session")
def pg_cluster():
    cluster = PgCluster()
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'control.db'}"
    return request.getfixturevalue("pg_cluster").new_database()


class Clock:
    def __init__(self, t: float = T0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


@dataclass
class Control:
    """A running control plane and a client session for it."""
    url: str
    session: aiohttp.ClientSession
    clock: Clock
    app: web.Application
    runner: web.AppRunner

    @property
    def ctx(self):
        return self.app[CONTEXT]

    @property
    def flusher(self):
        return self.app[FLUSHER]

    def auth(self, token: str = OPERATOR_TOKEN) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    async def call(self, method: str, path: str, body: Any = None, *, token: str | None = OPERATOR_TOKEN,
                   headers: dict | None = None, raw: bytes | None = None) -> tuple[int, Any, Any]:
        h = dict(headers or {})
        if token is not None:
            h.setdefault("Authorization", f"Bearer {token}")
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
        if data is not None:
            h.setdefault("Content-Type", "application/json")
            if len(data) > 512 * 1024:       # aiohttp warns about big raw bytes bodies
                data = io.BytesIO(data)
        async with self.session.request(method, self.url + path, data=data, headers=h) as r:
            text = await r.read()
            ctype = r.headers.get("Content-Type", "")
            parsed = json.loads(text) if text and ctype.startswith("application/json") else text
            return r.status, parsed, r.headers


def config_for(database_url: str, tmp_path: Path, **sections) -> ControlConfig:
    token_file = tmp_path / "operator.token"
    token_file.write_text(OPERATOR_TOKEN + "\n")
    base = ControlConfig(file="(test)")
    config = replace(base, database=replace(base.database, url=database_url, migrate_on_start=True, pool_size=5),
                     auth=AuthConfig(operator_token_files=(token_file,)),
                     telemetry=replace(base.telemetry, flush_interval=3600.0),
                     fill=replace(base.fill, inputs_cache=0.0))
    return replace(config, **sections) if sections else config


async def start_control(config: ControlConfig, clock: Clock | None = None) -> Control:
    clock = clock or Clock()
    app = create_app(config, clock=clock)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    session = aiohttp.ClientSession()
    return Control(f"http://127.0.0.1:{port}", session, clock, app, runner)


async def stop_control(control: Control) -> None:
    await control.session.close()
    await control.runner.cleanup()


@pytest.fixture
async def make_control(database_url, tmp_path):
    started: list[Control] = []

    async def make(**sections) -> Control:
        control = await start_control(config_for(database_url, tmp_path, **sections))
        started.append(control)
        return control

    yield make
    for control in started:
        await stop_control(control)


@pytest.fixture
async def control(make_control) -> Control:
    return await make_control()
