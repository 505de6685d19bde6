"""The three real parts together on loopback: the appliance's reporter (real store) reports to the real
control plane (SQLite), steering polls the control plane's fleet snapshot and answers; the control plane
is then stopped and steering keeps answering from its last model."""

from __future__ import annotations

import aiohttp
from prometheus_client import CollectorRegistry

from oca.config import Section, load_oca_config
from oca.reporter import Reporter, ReportOutcome, read_reporter_config
from oca.store import Store
from steering.config import ContentSteeringConfig, RankingConfig, SnapshotConfig, SteeringConfig
from steering.service import HOLDER, create_daemon_app
from tests.integration.control_plane import builders as b
from tests.integration.control_plane.conftest import OPERATOR_TOKEN, config_for, start_control, stop_control

from .conftest import wait_for, write_oca_toml
from .test_service import Steering, ids


async def test_reporter_to_control_plane_to_steering(tmp_path):
    control = await start_control(config_for(f"sqlite:///{tmp_path / 'control.db'}", tmp_path))
    steering = None
    store = None
    try:
        status, body, _ = await control.call("POST", "/api/v1/appliances", b.appliance())
        assert status == 201, body
        path = write_oca_toml(tmp_path, control.url, 'prefixes_static = ["203.0.113.0/24", "2001:db8:7::/48"]\n'
                                                      "route_table = 0")
        path.write_text(path.read_text().replace('token = "appliance-token-isp1-a"', f'token = "{body["token"]}"'))
        oca = load_oca_config(path)
        store = Store.open(oca.store)
        src = tmp_path / "a.mp4"
        src.write_bytes(b"x" * 4096)
        store.add_file("t1/a.mp4", src)
        async with aiohttp.ClientSession() as session:
            reporter = Reporter(read_reporter_config(Section(oca.reporter, str(path), "reporter")), store, session)
            assert await reporter.report_once() is ReportOutcome.ACCEPTED

        config = SteeringConfig(
            listen=("127.0.0.1", 0),
            snapshot=SnapshotConfig(f"{control.url}/api/v1/fleet/snapshot", OPERATOR_TOKEN, interval=0.05,
                                    timeout=5.0),
            asn_db=None, country_db=None, ranking=RankingConfig(), content_steering=ContentSteeringConfig())
        steering = Steering(create_daemon_app(config, registry=CollectorRegistry()))
        await steering.start()

        async def model_loaded():
            return steering.app[HOLDER].model is not None
        await wait_for(model_loaded, timeout=20, what="a model from the control plane")
        for ip in ("203.0.113.9", "2001:db8:7::1"):
            status, answer, _ = await steering.get("/api/v1/steer", ip=ip, key="t1/a.mp4")
            assert status == 200 and ids(answer) == ["isp1-a"], answer
            assert answer["candidates"][0]["base_url"] == "http://10.0.0.5:8080"
            assert answer["client"]["source"] == "bgp" and answer["client"]["asn"] == 64500

        await stop_control(control)
        control = None
        status, answer, _ = await steering.get("/api/v1/steer", ip="203.0.113.9", key="t1/a.mp4")
        assert status == 200 and ids(answer) == ["isp1-a"]
    finally:
        if steering is not None:
            await steering.stop()
        if control is not None:
            await stop_control(control)
        if store is not None:
            store.close()
