"""End to end with the real control plane (SQLite): licence expiry evicts a title from the appliance.

Control plane (catalog, licences, fleet, popularity, fill manifests) → fill agent → store, with our edge
in open mode as the origin whose base URL the control plane puts in the manifest's sources.
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
from dataclasses import replace

import pytest
from prometheus_client import CollectorRegistry

from fill.agent import Agent, CycleStatus
from fill.config import read_fill_config
from fill.fetcher import client_session
from fill.metrics import FillMetrics
from oca.store import Store
from tests.integration.fill.conftest import OCA, File, put_files, write_fill_config

DAY = 86400.0

control_plane = pytest.importorskip("control_plane.app")
from control_plane.config import FillConfig as ControlFillConfig  # noqa: E402
from control_plane.config import GeoConfig, SigningConfig  # noqa: E402
from control_plane.validation import format_time  # noqa: E402
from tests.integration.control_plane import builders as b  # noqa: E402
from tests.integration.control_plane.conftest import config_for, start_control, stop_control  # noqa: E402


def rendition_files() -> dict[str, list[File]]:
    out = {}
    for tid in ("t1", "t4"):
        out[tid] = [File(f"{tid}/r{n}.mp4", (f"{tid}-{n}-".encode() * 40_000)[: 120_000 + n]) for n in range(2)]
    return out


@pytest.fixture
async def control(tmp_path):
    config = config_for(f"sqlite:///{tmp_path / 'control.db'}", tmp_path,
                        fill=replace(ControlFillConfig(), licence_window=DAY),
                        geoip=GeoConfig(trusted_proxies=(ipaddress.ip_network("127.0.0.0/8"),)))
    c = await start_control(config)
    yield c
    await stop_control(c)


async def test_licence_expiry_evicts_the_title_end_to_end(tmp_path, control, edge_factory):
    files = rendition_files()
    put_files(tmp_path / "origin", [f for fs in files.values() for f in fs])
    origin = edge_factory(tmp_path / "origin")
    now = control.clock.t
    for tid, fs in files.items():
        assert (await control.call("POST", "/api/v1/titles", b.title(tid)))[0] in (200, 201)
        for f in fs:
            status, body, _ = await control.call("POST", f"/api/v1/titles/{tid}/renditions",
                                                 b.rendition(f.key, f.size, sha256=f.sha256))
            assert status in (200, 201), body
        licence = {"region": "DE", "start": "2027-01-01T00:00:00Z"}
        if tid == "t4":
            licence["end"] = format_time(now + 2 * DAY)              # ends the day after tomorrow
        assert (await control.call("POST", f"/api/v1/titles/{tid}/licenses", licence))[0] in (200, 201)
    origin_body = {**b.appliance("origin-1", "origin", "origin", port=1), "base_url": origin.url}
    assert (await control.call("POST", "/api/v1/appliances", origin_body))[0] in (200, 201)
    status, body, _ = await control.call("POST", "/api/v1/appliances", b.appliance("isp1-a", ssd=10**6, hdd=10**7))
    assert status in (200, 201)
    (tmp_path / "appliance-token").write_text(body["token"])
    for tid in ("t1", "t4"):
        for _ in range(3):
            status, _, _ = await control.call("POST", f"/api/v1/playback/{tid}/event",
                                              {"type": "play", "positionMs": 0}, token=None,
                                              headers={"X-Client-Country": "DE"})
            assert status == 204
    assert await control.flusher.flush_once()

    cfg_path = write_fill_config(tmp_path, control.url, ssd=("1MB",), hdd=("10MB",))
    # the control plane issued the appliance's token: use it instead of the fixture's
    cfg_path.write_text(cfg_path.read_text().replace('token_file = "token"', 'token_file = "appliance-token"'))
    config = read_fill_config(cfg_path)
    store = Store.open(config.store, cleanup=True)
    try:
        async with client_session() as session:
            agent = Agent(config, store, session, FillMetrics(CollectorRegistry()), tty=False)
            first = await agent.run_once()
            assert first.status is CycleStatus.COMPLETE, first
            all_keys = sorted(f.key for fs in files.values() for f in fs)
            assert sorted(e.key for e in store.entries()) == all_keys
            assert all(r.status == "ok" for r in store.verify())

            control.clock.advance(1.5 * DAY)      # t4's licence now ends inside the next fill window
            second = await agent.run_once()
            assert second.status is CycleStatus.COMPLETE, second
            assert second.summary.evicted == 2 and second.summary.fetched == 0
            assert sorted(e.key for e in store.entries()) == sorted(f.key for f in files["t1"])
            assert agent.metrics.registry.get_sample_value("oca_fill_evictions_total",
                                                           {"reason": "not_listed"}) == 2
            for f in files["t4"]:
                assert store.lookup(f.key) is None
    finally:
        store.close()


SECRET = "k" * 40


class Appliance:
    """A real appliance edge (`oca serve --config`, store-backed, signed URLs required) holding `files`."""

    def __init__(self, root, files: list[File], keys_file) -> None:
        from oca.config import load_toml, read_store_config
        from oca.store import init_disks
        from tests.storekit import write_store_config

        toml = write_store_config(root, ssd=(), hdd=("10MB",), extra=(
            f'[server]\nlisten = "127.0.0.1:0"\nworkers = 1\n[tokens]\nmode = "require"\nkeys_file = "{keys_file}"\n'
            '[files]\nrefresh_interval = "50ms"\n'))
        config = read_store_config(load_toml(toml))
        init_disks(config)
        with Store.open(config, cleanup=True) as store:
            for f in files:
                (root / "src").write_bytes(f.data)
                store.add_file(f.key, root / "src", sha256=f.sha256)
        self.proc = subprocess.Popen([OCA, "serve", "--config", str(toml), "--admin", "127.0.0.1:0"],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.url = "http://" + json.loads(self.proc.stdout.readline())["listen"]

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        self.proc.stdout.close()


async def test_peer_first_with_signed_urls_end_to_end(tmp_path, edge_factory):
    keys = tmp_path / "keys.toml"
    keys.write_text(f'[[keys]]\nid = "k1"\nsecret = "{SECRET}"\n')
    config = config_for(f"sqlite:///{tmp_path / 'control.db'}", tmp_path,
                        fill=replace(ControlFillConfig(), licence_window=DAY, url_ttl=DAY),
                        signing=SigningConfig(key_ring=keys),
                        geoip=GeoConfig(trusted_proxies=(ipaddress.ip_network("127.0.0.0/8"),)))
    control = await start_control(config)
    files = rendition_files()["t1"]
    put_files(tmp_path / "origin", files)
    origin = edge_factory(tmp_path / "origin")
    peer = Appliance(tmp_path / "peer", files[:1], keys)          # the peer holds only r0
    try:
        assert (await control.call("POST", "/api/v1/titles", b.title("t1")))[0] in (200, 201)
        for f in files:
            assert (await control.call("POST", "/api/v1/titles/t1/renditions",
                                       b.rendition(f.key, f.size, sha256=f.sha256)))[0] in (200, 201)
        await control.call("POST", "/api/v1/titles/t1/licenses", {"region": "DE", "start": "2027-01-01T00:00:00Z"})
        await control.call("POST", "/api/v1/appliances",
                           {**b.appliance("origin-1", "origin", "origin", port=1), "base_url": origin.url})
        status, body, _ = await control.call("POST", "/api/v1/appliances", {**b.appliance("isp1-b", port=2),
                                                                             "base_url": peer.url})
        held = b.full(1, {"key": files[0].key, "size": files[0].size, "sha256": files[0].sha256, "tier": "hdd"})
        assert (await control.call("POST", "/api/v1/appliances/isp1-b/report", b.report("isp1-b", inventory=held),
                                   token=body["token"]))[0] == 200
        status, body, _ = await control.call("POST", "/api/v1/appliances", b.appliance("isp1-a", ssd=10**6,
                                                                                     hdd=10**7))
        (tmp_path / "appliance-token").write_text(body["token"])
        for _ in range(3):
            await control.call("POST", "/api/v1/playback/t1/event", {"type": "play", "positionMs": 0}, token=None,
                               headers={"X-Client-Country": "DE"})
        assert await control.flusher.flush_once()

        cfg_path = write_fill_config(tmp_path, control.url, ssd=("1MB",), hdd=("10MB",))
        cfg_path.write_text(cfg_path.read_text().replace('token_file = "token"', 'token_file = "appliance-token"'))
        fill_config = read_fill_config(cfg_path)
        with Store.open(fill_config.store, cleanup=True) as store:
            async with client_session() as session:
                agent = Agent(fill_config, store, session, FillMetrics(CollectorRegistry()), tty=False)
                result = await agent.run_once()
                assert result.status is CycleStatus.COMPLETE, result
                assert sorted(e.key for e in store.entries()) == sorted(f.key for f in files)
                assert all(r.status == "ok" for r in store.verify())
                sample = agent.metrics.registry.get_sample_value
                # r0 came from the peer, over a URL the control plane signed and the peer's edge checked
                assert sample("oca_fill_bytes_fetched_total", {"source_kind": "peer"}) == files[0].size
                assert sample("oca_fill_bytes_fetched_total", {"source_kind": "origin"}) == files[1].size
    finally:
        peer.stop()
        await stop_control(control)
