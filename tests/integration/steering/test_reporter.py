"""The reporter against a report endpoint on loopback, over a real store (LMDB + files in tmp)."""

from __future__ import annotations

import asyncio
import itertools
import json
import sys
import time

import aiohttp
import pytest

from oca.config import Section, load_oca_config
from oca.kernel_routes import KernelRoutes
from oca.reporter import Reporter, ReportOutcome, read_reporter_config
from oca.store import Store

from .conftest import write_oca_toml


def open_reporter(path, session, routes=None, tx=None, clock=None):
    oca = load_oca_config(path)
    config = read_reporter_config(Section(oca.reporter, str(path), "reporter"))
    store = Store.open(oca.store)
    counters = iter(tx or [])
    reporter = Reporter(config, store, session, clock=clock or time.time,
                        routes=lambda cfg: routes() if routes else None,
                        tx_bytes=lambda iface, netns: next(counters))
    return reporter, store


def add(store, tmp_path, key, data, tier=None):
    src = tmp_path / "src.bin"
    src.write_bytes(data)
    return store.add_file(key, src, tier=tier)


async def test_full_then_deltas_then_full_after_409(report_sink, tmp_path):
    path = write_oca_toml(tmp_path, report_sink.base_url, 'prefixes_static = ["192.0.2.0/24"]')
    table = {"routes": KernelRoutes(("203.0.113.0/24",), ("2001:db8::/32",))}
    async with aiohttp.ClientSession() as session:
        reporter, store = open_reporter(path, session, routes=lambda: table["routes"])
        try:
            add(store, tmp_path, "t1/a.mp4", b"a" * 1000, tier="ssd")
            assert await reporter.report_once() is ReportOutcome.ACCEPTED
            first = report_sink.reports[-1]
            assert first["version"] == 1 and first["appliance_id"] == "isp1-a"
            assert first["inventory"]["kind"] == "full"
            assert [i["key"] for i in first["inventory"]["items"]] == ["t1/a.mp4"]
            assert first["inventory"]["items"][0]["tier"] == "ssd" and first["inventory"]["items"][0]["size"] == 1000
            assert first["prefixes"] == {"ipv4": ["192.0.2.0/24", "203.0.113.0/24"], "ipv6": ["2001:db8::/32"],
                                         "source": "kernel-table:100+static"}
            assert first["health"]["status"] == "ok" and {d["id"] for d in first["health"]["disks"]} == \
                {"ssd/0", "hdd/0"}
            assert first["load"]["link_capacity_bps"] == 10_000_000_000 and first["load"]["tx_bps"] == 0

            add(store, tmp_path, "t1/b.mp4", b"b" * 10)
            store.remove("t1/a.mp4")
            table["routes"] = KernelRoutes((), ("2001:db8::/32",))        # a withdrawal
            assert await reporter.report_once() is ReportOutcome.ACCEPTED
            delta = report_sink.reports[-1]["inventory"]
            assert delta["kind"] == "delta" and delta["base_generation"] == first["inventory"]["generation"]
            assert [i["key"] for i in delta["added"]] == ["t1/b.mp4"] and delta["removed"] == ["t1/a.mp4"]
            assert report_sink.reports[-1]["prefixes"]["ipv4"] == ["192.0.2.0/24"]
            assert set(report_sink.inventory) == {"t1/b.mp4"}

            report_sink.generation = None                     # the control plane lost our state
            assert await reporter.run(once=True) is ReportOutcome.ACCEPTED
            kinds = [r["inventory"]["kind"] for r in report_sink.reports[-2:]]
            assert kinds == ["delta", "full"] and set(report_sink.inventory) == {"t1/b.mp4"}
        finally:
            store.close()


async def test_keeps_going_while_the_control_plane_is_down(report_sink, tmp_path):
    path = write_oca_toml(tmp_path, report_sink.base_url, 'interface = "eth9"')
    port = report_sink.port
    await report_sink.stop()
    async with aiohttp.ClientSession() as session:
        # The clock advances 1 s per reading: start t=0, report 1 samples at t=1 and is sent at t=2, report 2
        # samples at t=3. 12,500 bytes per sample: 100 kbit/s, then 50 kbit/s.
        ticks = itertools.count()
        reporter, store = open_reporter(path, session, tx=[1000, 13_500, 26_000],
                                        clock=lambda: float(next(ticks)))
        try:
            assert await reporter.report_once() is ReportOutcome.UNREACHABLE
            assert reporter.last_report["inventory"]["kind"] == "full"
            assert reporter.last_report["load"]["tx_bps"] == 100_000
            assert reporter.last_report["sent_at"] == "1970-01-01T00:00:02Z"
            await report_sink.start(port)
            assert await reporter.report_once() is ReportOutcome.ACCEPTED
            assert report_sink.reports[-1]["inventory"]["kind"] == "full"
            assert report_sink.reports[-1]["load"]["tx_bps"] == 50_000
            assert report_sink.reports[-1]["load"]["ratio"] == 0.000005
        finally:
            store.close()


async def test_route_read_failure_degrades_health_but_still_reports(report_sink, tmp_path):
    path = write_oca_toml(tmp_path, report_sink.base_url)

    def broken():
        raise OSError(1, "Operation not permitted")
    async with aiohttp.ClientSession() as session:
        reporter, store = open_reporter(path, session, routes=broken)
        try:
            assert await reporter.report_once() is ReportOutcome.ACCEPTED
            health = report_sink.reports[-1]["health"]
            assert health["status"] == "degraded" and "kernel table 100" in health["errors"][0]
        finally:
            store.close()


async def test_wrong_token_is_rejected_and_retried_next_interval(report_sink, tmp_path):
    path = write_oca_toml(tmp_path, report_sink.base_url)
    text = path.read_text().replace('token = "appliance-token-isp1-a"', 'token = "wrong"')
    path.write_text(text)
    async with aiohttp.ClientSession() as session:
        reporter, store = open_reporter(path, session)
        try:
            assert await reporter.report_once() is ReportOutcome.REJECTED
            assert reporter.inventory.accepted is None
        finally:
            store.close()


@pytest.mark.parametrize("once_ok", [True, False])
async def test_oca_report_once_cli(report_sink, tmp_path, once_ok):
    path = write_oca_toml(tmp_path, report_sink.base_url, 'prefixes_static = ["198.51.100.0/24"]\nroute_table = 0')
    if not once_ok:
        await report_sink.stop()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "oca.cli", "report", "--config", str(path), "--once", "--print",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    stdout, stderr = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == (0 if once_ok else 1), stderr.decode()
    sent = json.loads(stdout)
    assert sent["prefixes"] == {"ipv4": ["198.51.100.0/24"], "ipv6": [], "source": "static"}
    if once_ok:
        assert report_sink.reports[-1] == sent


async def test_a_report_that_cannot_be_built_does_not_stop_the_loop(report_sink, tmp_path):
    path = write_oca_toml(tmp_path, report_sink.base_url)
    calls = []

    def routes_fail_once():
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("unexpected")
        return None
    async with aiohttp.ClientSession() as session:
        reporter, store = open_reporter(path, session, routes=routes_fail_once)
        try:
            assert await reporter.run(once=True) is ReportOutcome.FAILED
            assert await reporter.run(once=True) is ReportOutcome.ACCEPTED
        finally:
            store.close()


async def test_an_edge_that_does_not_serve_makes_the_appliance_unhealthy(report_sink, tmp_path):
    """A box whose server is down must leave rotation even though its disks are fine."""
    from aiohttp import web

    ready = {"status": 200}

    async def readyz(request):
        return web.Response(status=ready["status"])

    app = web.Application()
    app.router.add_get("/readyz", readyz)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/readyz"
    path = write_oca_toml(tmp_path, report_sink.base_url, f'edge_ready_url = "{url}"')
    async with aiohttp.ClientSession() as session:
        reporter, store = open_reporter(path, session)
        try:
            await reporter.report_once()
            assert report_sink.reports[-1]["health"]["status"] == "ok"
            ready["status"] = 503                               # draining
            await reporter.report_once()
            health = report_sink.reports[-1]["health"]
            assert health["status"] == "failed" and "answered HTTP 503" in health["errors"][0]
            await runner.cleanup()                              # gone
            await reporter.report_once()
            health = report_sink.reports[-1]["health"]
            assert health["status"] == "failed" and "edge not serving" in health["errors"][0]
        finally:
            store.close()
            await runner.cleanup()
