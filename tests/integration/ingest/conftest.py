"""A real control plane (SQLite) with the ingest and playback routes, a key ring, a trusted proxy for
the client-country header, and the ingest output directory in tmp_path."""

from __future__ import annotations

import asyncio
import ipaddress
import time
from dataclasses import replace

import pytest
from aiohttp import web

from control_plane.api.playback_manifest import PlaybackSettings
from control_plane.app import create_app
from control_plane.config import GeoConfig, SigningConfig
from control_plane.context import CONTEXT
from control_plane.ingest_jobs import IngestSettings
from tests.integration.control_plane.conftest import OPERATOR_TOKEN, Control, config_for

KEY_ID, SECRET = "k1", "a secret of at least thirty-two characters!!"
LOOPBACK = (ipaddress.ip_network("127.0.0.1/32"),)


class RealClock:
    def __call__(self) -> float:
        return time.time()


async def start(tmp_path, *, max_ffmpeg: int = 2, playback: PlaybackSettings | None = None,
                run_jobs: bool = True) -> Control:
    """A control plane on tmp_path's database; several may share it (replicas: `run_jobs=False`)."""
    ring = tmp_path / "keys.toml"
    ring.write_text(f'[[keys]]\nid = "{KEY_ID}"\nsecret = "{SECRET}"\n')
    config = config_for(f"sqlite:///{tmp_path / 'control.db'}", tmp_path)
    config = replace(config, geoip=GeoConfig(trusted_proxies=LOOPBACK),
                     signing=SigningConfig(key_ring=ring, key_id=KEY_ID))
    clock = RealClock()
    app = create_app(config, clock=clock)
    app[CONTEXT].extras["ingest_settings"] = IngestSettings(
        output_dir=tmp_path / "content", work_dir=tmp_path / "work", max_ffmpeg=max_ffmpeg, progress_interval=0.2,
        run_jobs=run_jobs, poll_interval=0.2)
    app[CONTEXT].extras["playback_settings"] = playback or PlaybackSettings(cache_ttl=0.0)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    import aiohttp

    return Control(f"http://127.0.0.1:{runner.addresses[0][1]}", aiohttp.ClientSession(), clock, app, runner)


async def stop(control: Control) -> None:
    await control.session.close()
    await control.runner.cleanup()


@pytest.fixture
async def cp(tmp_path):
    control = await start(tmp_path)
    yield control
    await stop(control)


async def wait_for_state(control: Control, title_id: str, states: tuple[str, ...], timeout: float = 120,
                         until=lambda status: True) -> dict:
    """Poll encoding-status until the job is in one of `states` and `until(status)` holds (or it is
    done/failed); a condition wait with a timeout."""
    async def poll():
        while True:
            status, body, _ = await control.call("GET", f"/api/v1/content/{title_id}/encoding-status")
            if status == 200 and body["job"]["state"] in states and (
                    until(body) or body["job"]["state"] in ("done", "failed")):
                return body
            await asyncio.sleep(0.1)

    return await asyncio.wait_for(poll(), timeout)


__all__ = ["OPERATOR_TOKEN", "KEY_ID", "SECRET", "start", "stop", "wait_for_state"]
