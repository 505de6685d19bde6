"""`oca-control serve` with `server.workers = 2`: one port, two processes, shared work, one supervisor."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sqlite3
import sys
from pathlib import Path

import aiohttp

from tests.integration.control_plane import builders as b

HB = {"positionMs": 1, "bufferHealth": 3.0, "bitrate": 1000, "deviceId": "d"}
TOKEN = "workers-operator-token-0123456789"
HEARTBEATS = 300


def _config(tmp_path: Path) -> Path:
    (tmp_path / "op.token").write_text(TOKEN + "\n")
    path = tmp_path / "oca-control.toml"
    path.write_text(f"""
[server]
listen = "127.0.0.1:0"
workers = 2
[database]
url = "sqlite:///{tmp_path / 'control.db'}"
migrate_on_start = true
[auth]
operator_token_files = ["{tmp_path / 'op.token'}"]
[telemetry]
flush_interval = "200ms"
[ingest]
poll_interval = "200ms"
""")
    return path


def _log(err: Path) -> list[dict]:
    lines = []
    for line in err.read_text().splitlines():
        try:
            lines.append(json.loads(line))
        except ValueError:
            pass
    return lines


def _started(err: Path) -> dict[int, list[int]]:
    """slot → pids the supervisor started for it, in order."""
    out: dict[int, list[int]] = {}
    for entry in _log(err):
        if entry.get("msg") == "worker started":
            out.setdefault(entry["slot"], []).append(entry["pid"])
    return out


async def _until(predicate, timeout: float = 30.0) -> None:
    async def loop():
        while not await predicate():
            await asyncio.sleep(0.05)
    await asyncio.wait_for(loop(), timeout)


def _heartbeats(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT COALESCE(SUM(heartbeats), 0) FROM playback_stats").fetchone()[0]


async def test_two_workers_share_one_port_the_telemetry_the_metrics_and_the_jobs(tmp_path):
    err_path = tmp_path / "stderr.log"
    with err_path.open("wb") as err:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "control_plane.cli", "serve", "--config", str(_config(tmp_path)),
            stdout=asyncio.subprocess.PIPE, stderr=err)
    try:
        line = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode()
        m = re.search(r"listening on (http://\S+) \(2 workers\)", line)
        assert m, line + err_path.read_text()
        url = m.group(1)
        auth = {"Authorization": f"Bearer {TOKEN}"}
        # A new connection per request: SO_REUSEPORT spreads connections, not requests.
        async with aiohttp.ClientSession(headers=auth, connector=aiohttp.TCPConnector(force_close=True)) as s:
            async with s.post(url + "/api/v1/titles", json=b.title("t1")) as r:
                assert r.status == 201
            # The other worker learns of the new title when a miss reloads its title set, at most once
            # per TitleDirectory.min_interval (1 s) after its last load: wait that out.
            await asyncio.sleep(1.1)
            for _ in range(HEARTBEATS):
                async with s.post(url + "/api/v1/playback/t1/heartbeat", json=HB) as r:
                    assert r.status == 204
            served_by = {e["worker"] for e in _log(err_path)
                         if e.get("path") == "/api/v1/playback/t1/heartbeat" and e.get("status") == 204}
            assert served_by == {0, 1}

            async def flushed() -> bool:
                return _heartbeats(tmp_path / "control.db") == HEARTBEATS
            await _until(flushed)
            async with s.get(url + "/metrics") as r:      # whichever worker answers, it counts both
                text = await r.text()
            assert f'oca_control_telemetry_records_total{{kind="heartbeat"}} {float(HEARTBEATS)}' in text

            # Only worker 0 runs ingest jobs: each one ends after exactly one attempt.
            notes = tmp_path / "notes.mp4"
            notes.write_text("not a video")
            for i in range(4):
                async with s.post(url + "/api/v1/content/ingest",
                                  json={"titleId": f"n{i}", "masterFileUrl": f"file://{notes}"}) as r:
                    assert r.status == 202, await r.text()

            async def jobs_failed_once() -> bool:
                states = []
                for i in range(4):
                    async with s.get(url + f"/api/v1/content/n{i}/encoding-status") as r:
                        states.append((await r.json())["job"])
                return all(j["state"] == "failed" and j["attempts"] == 1 for j in states)
            await _until(jobs_failed_once, 60)

            proc.send_signal(signal.SIGHUP)

            async def both_reloaded() -> bool:
                return {e.get("worker") for e in _log(err_path)
                        if e.get("msg") == "SIGHUP: configuration reloaded"} == {0, 1}
            await _until(both_reloaded)

            victim = _started(err_path)[1][0]
            os.kill(victim, signal.SIGKILL)

            async def replaced() -> bool:
                return len(_started(err_path).get(1, [])) == 2
            await _until(replaced)
            for _ in range(20):
                async with s.get(url + "/healthz") as r:
                    assert r.status == 200
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(proc.wait(), 60)
    assert code == 0, err_path.read_text()
    for pids in _started(err_path).values():
        for pid in pids:
            assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()
    assert any(e.get("msg") == "worker died; restarting it" and e.get("pid") == victim for e in _log(err_path))
