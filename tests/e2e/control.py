"""A real control plane for the player tests: SQLite, GeoIP database placing loopback clients in DE,
the edges' key ring for signing, ingest output in a temporary directory. Runs on a given loop."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from pathlib import Path

import aiohttp
from aiohttp import web

from control_plane.api.playback_manifest import PlaybackSettings
from control_plane.app import create_app
from control_plane.config import AuthConfig, ControlConfig, GeoConfig, SigningConfig
from control_plane.context import CONTEXT
from control_plane.ingest_jobs import IngestSettings

OPERATOR = "operator-token-for-the-player-tests-0123456789"


def _country_db(path: Path) -> Path:
    from mmdb_writer import MMDBWriter
    from netaddr import IPSet

    writer = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="GeoLite2-Country")
    writer.insert_network(IPSet(["127.0.0.0/8"]), {"country": {"iso_code": "DE"}})
    writer.to_db_file(str(path))
    return path


class Control:
    def __init__(self, workdir: Path, keys_file: Path, key_id: str) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        token = workdir / "operator.token"
        token.write_text(OPERATOR + "\n")
        base = ControlConfig(file="(e2e)")
        self.config = replace(
            base, database=replace(base.database, url=f"sqlite:///{workdir / 'control.db'}", migrate_on_start=True),
            auth=AuthConfig(operator_token_files=(token,)),
            geoip=GeoConfig(country_db=_country_db(workdir / "country.mmdb")),
            signing=SigningConfig(key_ring=keys_file, key_id=key_id))
        self.content = workdir / "content"
        self.workdir = workdir

    async def start(self) -> str:
        app = create_app(self.config)
        app[CONTEXT].extras["ingest_settings"] = IngestSettings(output_dir=self.content,
                                                                work_dir=self.workdir / "work")
        app[CONTEXT].extras["playback_settings"] = PlaybackSettings()
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{self.runner.addresses[0][1]}"
        self.session = aiohttp.ClientSession(headers={"Authorization": f"Bearer {OPERATOR}"})
        return self.url

    async def call(self, method: str, path: str, body=None) -> tuple[int, dict]:
        async with self.session.request(method, self.url + path, json=body) as r:
            return r.status, await r.json()

    async def ingest(self, title_id: str, master: Path, timeout: float = 180) -> dict:
        status, body = await self.call("POST", "/api/v1/content/ingest",
                                       {"titleId": title_id, "masterFileUrl": f"file://{master}"})
        assert status == 202, body

        async def done():
            while True:
                status, body = await self.call("GET", f"/api/v1/content/{title_id}/encoding-status")
                if body["job"]["state"] in ("done", "failed", "cancelled"):
                    return body
                await asyncio.sleep(0.2)

        result = await asyncio.wait_for(done(), timeout)
        assert result["job"]["state"] == "done", json.dumps(result)
        return result

    async def setup_playback(self, title_id: str, origin_id: str, base_url: str) -> None:
        status, body = await self.call("POST", f"/api/v1/titles/{title_id}/licenses",
                                       {"region": "DE", "start": "2026-01-01T00:00:00Z"})
        assert status == 201, body
        status, body = await self.call("POST", "/api/v1/appliances", {
            "id": origin_id, "kind": "origin", "site": "e2e", "region": "eu-central", "country": "DE",
            "asn": 64500, "base_url": base_url, "capacity": {"ssd": 10**9, "hdd": 0},
            "link_capacity_bps": 10**10})
        assert status == 201, body

    async def stop(self) -> None:
        await self.session.close()
        await self.runner.cleanup()
