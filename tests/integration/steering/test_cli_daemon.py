"""`oca-steering serve --config FILE` as a real process against a snapshot server on loopback."""

from __future__ import annotations

import asyncio
import signal
import socket
import sys

import aiohttp
from yarl import URL

from .conftest import TOKEN, wait_for


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_daemon_serves_from_the_snapshot_and_stops_on_sigterm(snapshot_server, tmp_path):
    (tmp_path / "token").write_text(TOKEN + "\n")
    config = tmp_path / "oca-steering.toml"
    config.write_text(f'[snapshot]\nurl = "{snapshot_server.url}"\ntoken_file = "token"\ninterval = "100ms"\n')
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "steering.cli", "serve", "--config", str(config), "--listen", f"127.0.0.1:{port}",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as session:
            async def healthy() -> bool:
                try:
                    async with session.get(base + "/healthz") as resp:
                        return resp.status == 200
                except aiohttp.ClientError:
                    return proc.returncode is not None and _raise(proc.returncode)
            await wait_for(healthy, timeout=20, what="daemon healthy")
            bodies = []
            for _ in range(3):   # the Python path ranks and renders, then the front door answers from the cache
                async with session.get(base + "/api/v1/steer", params={"ip": "203.0.113.1", "key": "t1/a.mp4"}) as r:
                    assert r.status == 200 and r.content_type == "application/json"
                    bodies.append(await r.json())
            # Percent-encoded as a form would send it: decoded as yarl decodes it for the Python path.
            encoded = URL(base + "/api/v1/steer?ip=203%2E0.113.1&key=t1%2Fa%2emp4", encoded=True)
            async with session.get(encoded) as r:
                bodies.append(await r.json())
            assert bodies[0]["candidates"][0]["appliance_id"] == "isp1-a"
            for body in bodies:
                body["model"].pop("age_s")
            assert bodies[1:] == [bodies[0]] * 3
            async with session.get(base + "/metrics") as r:
                metrics = await r.text()
            assert "oca_steering_compiled_answers_total 3.0" in metrics, metrics
            assert 'oca_steering_decisions_total{api="steer",tier="prefix"} 4.0' in metrics
            async with session.post(base + "/api/v1/steer?ip=203.0.113.1&key=t1/a.mp4") as r:
                assert r.status == 405                  # not a GET: the app's router answers
            async with session.get(base + "/api/v1/steer?ip=203.0.113.1&key=t1/../a") as r:
                assert r.status == 400 and (await r.json())["error"]["code"] == "invalid_key"
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        stderr = await asyncio.wait_for(proc.stderr.read(), 20)
        await asyncio.wait_for(proc.wait(), 20)
    assert proc.returncode == 0, stderr.decode()
    assert b'"logger": "steering.poller"' in stderr          # structured JSON application log


async def test_daemon_config_error_exits_2(tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text('[snapshot]\nurl = "http://x"\nbogus = 1\n')
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "steering.cli", "serve", "--config", str(config),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    _, stderr = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 2 and b"snapshot.bogus: unknown key" in stderr


def _raise(code: int) -> bool:
    raise AssertionError(f"daemon exited with {code}")
