"""`oca-control serve` as a process: embedded defaults, operator token, SIGHUP reload, SIGTERM drain."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import aiohttp

from tests.integration.control_plane import builders as b

HB = {"positionMs": 1, "bufferHealth": 3.0, "bitrate": 1000, "deviceId": "d"}


async def _start(argv: list[str], env: dict | None = None) -> tuple[asyncio.subprocess.Process, str, list[str]]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "control_plane.cli", *argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env={**os.environ, **(env or {})})
    lines: list[str] = []

    async def first_url() -> str:
        while True:
            line = (await proc.stdout.readline()).decode()
            if not line:
                raise AssertionError("server exited: " + (await proc.stderr.read()).decode())
            lines.append(line)
            m = re.search(r"listening on (http://\S+)", line)
            if m:
                return m.group(1)
    url = await asyncio.wait_for(first_url(), 30)
    return proc, url, lines


async def _wait_for(predicate, timeout: float = 20.0) -> None:
    async def loop():
        while not await predicate():
            await asyncio.sleep(0.05)
    await asyncio.wait_for(loop(), timeout)


async def test_data_dir_defaults_token_and_sigterm_drain(tmp_path):
    data = tmp_path / "data"
    proc, url, lines = await _start(["serve", "--listen", "127.0.0.1:0", "--data-dir", str(data)])
    try:
        token_path = data / "operator.token"
        assert any(str(token_path) in line and "created" in line for line in lines)
        assert token_path.stat().st_mode & 0o777 == 0o600
        token = token_path.read_text().strip()
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as s:
            async with s.post(url + "/api/v1/titles", json=b.title("t1")) as r:
                assert r.status == 201
            for _ in range(7):
                async with s.post(url + "/api/v1/playback/t1/heartbeat", json=HB) as r:
                    assert r.status == 204
    finally:
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(proc.wait(), 30)
        err = (await proc.stderr.read()).decode()
    assert code == 0, err
    assert '"draining"' in err or "draining" in err
    with sqlite3.connect(data / "control.db") as db:
        assert db.execute("SELECT SUM(heartbeats) FROM playback_stats").fetchone()[0] == 7


async def test_env_token_and_sighup_reload(tmp_path):
    token_file = tmp_path / "op.token"
    token_file.write_text("first-token-0123456789\n")
    config = tmp_path / "oca-control.toml"
    config.write_text(f"""
[server]
listen = "127.0.0.1:0"
access_log = false
[database]
url = "sqlite:///{tmp_path / 'c.db'}"
migrate_on_start = true
[auth]
operator_token_files = ["{token_file}"]
[log]
format = "text"
""")
    proc, url, _ = await _start(["serve", "--config", str(config)])
    try:
        async def status_with(token: str) -> int:
            async with aiohttp.ClientSession() as s, s.get(
                    url + "/api/v1/titles", headers={"Authorization": f"Bearer {token}"}) as r:
                return r.status
        assert await status_with("first-token-0123456789") == 200
        token_file.write_text("second-token-0123456789\n")
        proc.send_signal(signal.SIGHUP)

        async def second_works() -> bool:
            return await status_with("second-token-0123456789") == 200
        await _wait_for(second_works)
        assert await status_with("first-token-0123456789") == 403
        # A broken config on SIGHUP is refused; the running one stays.
        config.write_text(config.read_text() + "\n[fleet]\nstale_after = 'never'\n")
        proc.send_signal(signal.SIGHUP)

        async def refused() -> bool:
            async with aiohttp.ClientSession() as s, s.get(url + "/metrics") as r:
                return 'oca_control_config_reloads_total{result="error"} 1.0' in await r.text()
        await _wait_for(refused)
        assert await status_with("second-token-0123456789") == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 30) == 0


async def test_operator_token_from_environment(tmp_path):
    data = tmp_path / "d"
    proc, url, lines = await _start(["serve", "--listen", "127.0.0.1:0", "--data-dir", str(data)],
                                    env={"OCA_OPERATOR_TOKEN": "env-token-0123456789"})
    try:
        assert any("OCA_OPERATOR_TOKEN" in line for line in lines)
        async with aiohttp.ClientSession() as s, s.get(
                url + "/api/v1/titles", headers={"Authorization": "Bearer env-token-0123456789"}) as r:
            assert r.status == 200 and json.loads(await r.text())["titles"] == []
    finally:
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 30) == 0
    assert Path(data / "operator.token").read_text().strip() == "env-token-0123456789"
