"""The long-running agent: waits for its window, stops starting downloads when it closes, SIGTERM."""

from __future__ import annotations

import asyncio
import os
import pty
import signal
import socket
import sys
from dataclasses import replace
from datetime import UTC, datetime

import aiohttp
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


async def test_serve_retries_an_unreachable_control_plane(service, manifest_server):
    agent, clock, files = service
    clock.set(3)
    manifest_server.mode = "down"
    task = asyncio.create_task(agent.serve())
    await wait_for(lambda: manifest_server.requests >= 2, what="a retry after retry_interval (1 s)")
    assert sum(1 for _ in agent.store.entries()) == 0
    manifest_server.mode = "ok"
    await wait_for(lambda: sum(1 for _ in agent.store.entries()) == len(files), what="the fill once it is back")
    agent.stop()
    await asyncio.wait_for(task, 10)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def partial_sizes(staging) -> list[int]:
    sizes = []
    for p in staging.glob("part-*"):
        if p.suffix != ".json":
            try:
                sizes.append(p.stat().st_size)
            except FileNotFoundError:       # published meanwhile
                pass
    return sizes


async def test_sigterm_drains_then_pauses_and_the_next_run_resumes(tmp_path, edge_factory, manifest_server):
    files = make_files(3, 2_000_000, seed=33)
    put_files(tmp_path / "origin", files)
    org = edge_factory(tmp_path / "origin")
    manifest_server.doc = manifest_doc([item(i + 1, f, [origin(org.url, f)]) for i, f in enumerate(files)])
    port = free_port()
    cfg = write_fill_config(tmp_path, manifest_server.url, rate="8Mbit",          # 1 MB/s: 6 s for everything
                            extra=f'listen = "127.0.0.1:{port}"')                   # [metrics] listen
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "fill.cli", "run", "--config", str(cfg),
                                                cwd=REPO, env=cli_env(), stdout=asyncio.subprocess.DEVNULL,
                                                stderr=asyncio.subprocess.PIPE)
    staging = tmp_path / "appliance" / "hdd0" / "staging"
    try:
        await wait_for(lambda: any(n > 200_000 for n in partial_sizes(staging)), what="downloads under way")
        # the service's admin port, scraped while it downloads
        async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/metrics") as resp:
            metrics = await resp.text()
        assert resp.status == 200
        assert "oca_fill_downloads_in_flight 3.0" in metrics and "oca_fill_window_open 1.0" in metrics
        assert 'oca_fill_bytes_fetched_total{source_kind="origin"}' in metrics
        proc.send_signal(signal.SIGTERM)                           # drain_timeout is 2 s: then pause
        _, err = await asyncio.wait_for(proc.communicate(), 30)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, err.decode()[-2000:]
    log = err.decode()
    assert "SIGTERM: finishing in-flight downloads" in log and "paused" in log
    assert partial_sizes(staging), "a paused download keeps its partial"

    result = await run_cli("run", "--config", str(cfg), "--once")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "resumed at" in result.stderr
    assert list(staging.iterdir()) == []


async def test_progress_bar_on_a_terminal(tmp_path, edge_factory, manifest_server):
    files = make_files(3, 300_000, seed=35)
    put_files(tmp_path / "origin", files)
    org = edge_factory(tmp_path / "origin")
    manifest_server.doc = manifest_doc([item(i + 1, f, [origin(org.url, f)]) for i, f in enumerate(files)])
    cfg = write_fill_config(tmp_path, manifest_server.url, rate="8Mbit")           # ~1 s: a few redraws
    master, slave = pty.openpty()
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "fill.cli", "run", "--config", str(cfg),
                                                "--once", cwd=REPO, env=cli_env(), stdout=slave, stderr=slave)
    os.close(slave)
    chunks = []

    def drain() -> None:
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:             # EIO: the child closed the terminal
                return
            if not data:
                return
            chunks.append(data)

    reader = asyncio.get_running_loop().run_in_executor(None, drain)
    assert await asyncio.wait_for(proc.wait(), 60) == 0
    await asyncio.wait_for(reader, 10)
    os.close(master)
    out = b"".join(chunks).decode(errors="replace")
    assert "\r\x1b[2K[" in out                                    # redrawn in place
    assert "3/3 items" in out and "ETA" in out and "Mbit/s" in out
    assert "INFO oca.fill" in out                                  # text logs on a terminal, not JSON
