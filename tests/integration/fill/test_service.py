"""The long-running agent: waits for its window, stops starting downloads when it closes, SIGTERM."""

from __future__ import annotations

import asyncio
import signal
import sys
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from prometheus_client import CollectorRegistry

from fill.agent import Agent, CycleStatus
from fill.config import read_fill_config
from fill.fetcher import client_session
from fill.metrics import FillMetrics
from oca.store import Store
from tests.integration.fill.conftest import (
    REPO,
    cli_env,
    item,
    make_files,
    manifest_doc,
    origin,
    put_files,
    run_cli,
    wait_for,
    write_fill_config,
)

WINDOW = 'enabled = true\nstart = "02:00"\nend = "14:00"\njitter = "0s"\ntimezone = "UTC"'


class Clock:
    def __init__(self, hour: int, minute: int = 0) -> None:
        self.set(hour, minute)

    def set(self, hour: int, minute: int = 0) -> None:
        self.t = datetime(2026, 11, 25, hour, minute, tzinfo=UTC).timestamp()

    def __call__(self) -> float:
        return self.t


@pytest.fixture
async def service(tmp_path, edge_factory, manifest_server):
    files = make_files(5, 400_000, seed=31)
    put_files(tmp_path / "origin", files)
    org = edge_factory(tmp_path / "origin")
    manifest_server.doc = manifest_doc([item(i + 1, f, [origin(org.url, f)]) for i, f in enumerate(files)])
    config = read_fill_config(write_fill_config(tmp_path, manifest_server.url, window=WINDOW, rate="8Mbit"))
    config = replace(config, fetch=replace(config.fetch, concurrency=1))
    store = Store.open(config.store, cleanup=True)
    session = client_session()
    clock = Clock(20)
    agent = Agent(config, store, session, FillMetrics(CollectorRegistry()), wall_clock=clock, tty=False)
    yield agent, clock, files
    await session.close()
    store.close()


def gauge(agent, name):
    return agent.metrics.registry.get_sample_value(name)


async def test_waits_while_the_window_is_closed(service, manifest_server):
    agent, clock, _ = service
    task = asyncio.create_task(agent.serve())
    await wait_for(lambda: gauge(agent, "oca_fill_window_open") == 0.0, what="window reported closed")
    assert manifest_server.requests == 0 and not task.done()
    agent.stop()
    await asyncio.wait_for(task, 5)
    assert manifest_server.requests == 0


async def test_fills_in_the_window_and_stops_starting_when_it_closes(service, manifest_server):
    agent, clock, files = service
    clock.set(13, 59)
    run = asyncio.create_task(agent.run_once(respect_window=True))
    await wait_for(lambda: sum(1 for _ in agent.store.entries()) >= 1, what="the first file")
    clock.set(14, 0)                                               # the window closes during the run
    result = await asyncio.wait_for(run, 30)
    assert result.status is CycleStatus.INCOMPLETE
    s = result.summary
    assert s.fetched >= 1 and s.not_started >= 1 and s.fetched + s.not_started == len(files)
    assert not s.failed


async def test_serve_runs_when_open_then_stops_on_request(service, manifest_server):
    agent, clock, files = service
    clock.set(3)
    task = asyncio.create_task(agent.serve())
    await wait_for(lambda: sum(1 for _ in agent.store.entries()) == len(files), what="a complete fill")
    assert gauge(agent, "oca_fill_window_open") == 1.0
    agent.stop()
    await asyncio.wait_for(task, 10)


async def test_sigterm_drains_then_pauses_and_the_next_run_resumes(tmp_path, edge_factory, manifest_server):
    files = make_files(3, 2_000_000, seed=33)
    put_files(tmp_path / "origin", files)
    org = edge_factory(tmp_path / "origin")
    manifest_server.doc = manifest_doc([item(i + 1, f, [origin(org.url, f)]) for i, f in enumerate(files)])
    cfg = write_fill_config(tmp_path, manifest_server.url, rate="8Mbit")   # 1 MB/s: 6 s for everything
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "fill.cli", "run", "--config", str(cfg),
                                                cwd=REPO, env=cli_env(), stdout=asyncio.subprocess.DEVNULL,
                                                stderr=asyncio.subprocess.PIPE)
    staging = tmp_path / "appliance" / "hdd0" / "staging"
    await wait_for(lambda: any(p.stat().st_size > 200_000 for p in staging.glob("part-*") if p.suffix != ".json"),
                   what="downloads under way")
    proc.send_signal(signal.SIGTERM)                               # drain_timeout is 2 s: then pause
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()[-2000:]
    log = err.decode()
    assert "SIGTERM: finishing in-flight downloads" in log and "paused" in log
    partials = [p for p in staging.glob("part-*") if p.suffix != ".json"]
    assert partials, "a paused download keeps its partial"

    result = await run_cli("run", "--config", str(cfg), "--once")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "resumed at" in result.stderr
    assert list(staging.iterdir()) == []
