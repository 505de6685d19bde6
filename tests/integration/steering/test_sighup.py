"""`oca-steering serve` reloads its config file on SIGHUP: a good file is swapped in (new snapshot source,
new ranking limits), a bad one is logged and the running configuration kept; SIGTERM still stops it cleanly."""

from __future__ import annotations

import asyncio
import copy
import json
import signal
import sys

import aiohttp

from .conftest import TOKEN, SnapshotServer, wait_for
from .test_cli_daemon import _raise, free_port

STEER = {"ip": "203.0.113.1", "key": "t1/a.mp4"}


def _config(url: str, port: int, max_candidates: int) -> str:
    return (f'[server]\nlisten = "127.0.0.1:{port}"\n'
            f'[snapshot]\nurl = "{url}"\ntoken_file = "token"\ninterval = "100ms"\n'
            f'[ranking]\nmax_candidates = {max_candidates}\n')


async def test_sighup_reloads_good_config_and_keeps_running_one_on_bad(snapshot_server, tmp_path):
    # A second control plane whose snapshot makes isp1-a overloaded: isp1-b goes first.
    doc = copy.deepcopy(snapshot_server.doc)
    doc["generation"] = "g2"
    next(a for a in doc["appliances"] if a["id"] == "isp1-a")["load_ratio"] = 0.95
    second = SnapshotServer(doc)
    await second.start()
    (tmp_path / "token").write_text(TOKEN + "\n")
    config = tmp_path / "oca-steering.toml"
    port = free_port()
    config.write_text(_config(snapshot_server.url, port, 1))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "steering.cli", "serve", "--config", str(config),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    log: list[dict] = []

    async def read_log() -> None:
        assert proc.stderr is not None
        async for line in proc.stderr:
            try:
                log.append(json.loads(line))
            except ValueError:
                log.append({"message": line.decode(errors="replace")})

    reader = asyncio.create_task(read_log())
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as session:
            async def get(path: str, **params: str) -> tuple[int, dict]:
                async with session.get(base + path, params=params) as resp:
                    return resp.status, await resp.json()

            async def steered() -> list[str]:
                status, body = await get("/api/v1/steer", **STEER)
                assert status == 200, body
                return [c["appliance_id"] for c in body["candidates"]]

            async def healthy() -> bool:
                try:
                    return (await get("/healthz"))[0] == 200
                except aiohttp.ClientError:
                    return proc.returncode is not None and _raise(proc.returncode)

            def logged(level: str, text: str) -> bool:
                return any(r.get("level") == level and text in r["message"] for r in log)

            await wait_for(healthy, timeout=15, what="daemon healthy")
            assert await steered() == ["isp1-a"]

            # A good file: second snapshot server, more candidates, and a listen change that needs a restart.
            config.write_text(_config(second.url, free_port(), 3))
            proc.send_signal(signal.SIGHUP)

            async def reloaded() -> bool:
                _, health = await get("/healthz")
                return health["model"]["generation"] == "g2" and len(await steered()) == 3
            await wait_for(reloaded, timeout=10, what="new snapshot source and max_candidates in effect")
            assert await steered() == ["isp1-b", "origin", "isp1-a"]    # isp1-a overloaded in g2
            assert logged("info", "SIGHUP: configuration reloaded (changed: snapshot, ranking")
            assert logged("warning", "server.listen changed") and logged("warning", "needs a restart")
            assert await healthy()                             # still on the port it was started on

            # A bad file: logged naming file and key; the running configuration stays.
            config.write_text(_config(snapshot_server.url, port, 0))
            proc.send_signal(signal.SIGHUP)
            await wait_for(lambda: _true(logged("error", f"{config}: ranking.max_candidates")), timeout=10,
                           what="the rejected config logged")
            assert logged("error", "keeping the running one")
            _, health = await get("/healthz")
            assert health["model"]["generation"] == "g2"
            assert await steered() == ["isp1-b", "origin", "isp1-a"]
            async with session.get(base + "/metrics") as resp:
                metrics = await resp.text()
            assert 'oca_steering_config_reloads_total{outcome="ok"} 1.0' in metrics
            assert 'oca_steering_config_reloads_total{outcome="error"} 1.0' in metrics
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 15)
        await asyncio.wait_for(reader, 5)
        await second.stop()
    assert proc.returncode == 0, log


async def _true(value: bool) -> bool:
    return value
