"""Real BGP: an ISP router (BIRD 2, AS 64500) announces IPv4 and IPv6 prefixes to the appliance's BIRD
(AS 64501), which exports them into kernel table 100 only; the reporter reads the table and reports the
prefixes; a withdrawal at the ISP disappears from the next report.

Two network namespaces joined by a veth pair; needs root (it fails, with the reason, when not root).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import aiohttp
import pytest

from oca.config import Section, load_oca_config
from oca.kernel_routes import read_table
from oca.reporter import Reporter, ReportOutcome, read_reporter_config
from oca.store import Store

from .conftest import write_oca_toml

pytestmark = pytest.mark.root

ISP_V4 = ["198.51.100.0/24", "203.0.113.0/24"]
ISP_V6 = ["2001:db8:1::/48", "2001:db8:2::/48"]
TIMERS = "hold time 9; keepalive time 3; connect delay time 1;"   # lab timers: sessions up in ~1 s


def isp_config(v4: list[str], v6: list[str]) -> str:
    routes4 = "".join(f"  route {p} blackhole;\n" for p in v4)
    routes6 = "".join(f"  route {p} blackhole;\n" for p in v6)
    return f"""
router id 10.99.0.1;
protocol device {{}}
protocol static announced4 {{ ipv4;
{routes4}}}
protocol static announced6 {{ ipv6;
{routes6}}}
protocol bgp appliance4 {{ local 10.99.0.1 as 64500; neighbor 10.99.0.2 as 64501; {TIMERS}
  ipv4 {{ import none; export all; }}; }}
protocol bgp appliance6 {{ local fd00:99::1 as 64500; neighbor fd00:99::2 as 64501; {TIMERS}
  ipv6 {{ import none; export all; }}; }}
"""


# The appliance: learned routes go to kernel table 100 only, never the main table (docs/steering.md).
APPLIANCE = f"""
router id 10.99.0.2;
protocol device {{}}
protocol kernel table100v4 {{ ipv4 {{ import none; export all; }}; kernel table 100; learn off; persist off; }}
protocol kernel table100v6 {{ ipv6 {{ import none; export all; }}; kernel table 100; learn off; persist off; }}
protocol bgp isp4 {{ local 10.99.0.2 as 64501; neighbor 10.99.0.1 as 64500; {TIMERS}
  ipv4 {{ import all; export none; }}; }}
protocol bgp isp6 {{ local fd00:99::2 as 64501; neighbor fd00:99::1 as 64500; {TIMERS}
  ipv6 {{ import all; export none; }}; }}
"""


def run(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True, timeout=30)


def wait_until(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


class Lab:
    """Namespaces, veth, two BIRDs; `close()` removes everything whatever state it got to."""

    def __init__(self, tmp: Path) -> None:
        tag = f"{os.getpid() % 100000}"
        self.isp, self.oca = f"st-isp-{tag}", f"st-oca-{tag}"
        self.tmp = tmp
        self.birds: list[subprocess.Popen] = []

    def start(self) -> None:
        run("ip", "netns", "add", self.isp)
        run("ip", "netns", "add", self.oca)
        run("ip", "link", "add", "veth-st-isp", "netns", self.isp, "type", "veth",
            "peer", "name", "veth-st-oca", "netns", self.oca)
        for ns, dev, v4, v6 in ((self.isp, "veth-st-isp", "10.99.0.1/30", "fd00:99::1/64"),
                                (self.oca, "veth-st-oca", "10.99.0.2/30", "fd00:99::2/64")):
            run("ip", "-n", ns, "link", "set", "lo", "up")
            run("ip", "-n", ns, "addr", "add", v4, "dev", dev)
            run("ip", "-n", ns, "-6", "addr", "add", v6, "dev", dev, "nodad")
            run("ip", "-n", ns, "link", "set", dev, "up")
        self.write_isp(ISP_V4, ISP_V6)
        (self.tmp / "oca.conf").write_text(APPLIANCE)
        self.birds.append(self.bird(self.isp, "isp"))
        self.birds.append(self.bird(self.oca, "oca"))

    def write_isp(self, v4: list[str], v6: list[str]) -> None:
        (self.tmp / "isp.conf").write_text(isp_config(v4, v6))

    def bird(self, ns: str, name: str) -> subprocess.Popen:
        return subprocess.Popen(
            ["ip", "netns", "exec", ns, "bird", "-f", "-c", str(self.tmp / f"{name}.conf"),
             "-s", str(self.tmp / f"{name}.ctl")], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def reconfigure_isp(self) -> None:
        run("birdc", "-s", str(self.tmp / "isp.ctl"), "configure")

    def close(self) -> None:
        for proc in self.birds:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            if proc.stderr is not None:
                proc.stderr.close()
        for ns in (self.isp, self.oca):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)


@pytest.fixture
def lab(tmp_path):
    if os.geteuid() != 0:
        pytest.fail("this test needs root: it creates network namespaces and runs BIRD (run the suite as root)")
    for tool in ("bird", "birdc", "ip"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is not installed (scripts/system-packages.txt: apt install bird2 iproute2)")
    lab = Lab(tmp_path)
    try:
        lab.start()
        yield lab
    finally:
        lab.close()


@pytest.mark.parametrize("reader", ["netlink", "pyroute2"])
async def test_bgp_prefixes_reach_the_report_and_withdrawals_leave_it(lab, report_sink, tmp_path, reader):
    path = write_oca_toml(tmp_path, report_sink.base_url,
                          f'netns = "{lab.oca}"\nroute_table = 100\nroute_reader = "{reader}"')
    oca = load_oca_config(path)
    config = read_reporter_config(Section(oca.reporter, str(path), "reporter"))

    def table_is(v4, v6):
        routes = read_table(100, netns=lab.oca)
        return routes if (list(routes.ipv4), list(routes.ipv6)) == (v4, v6) else None

    wait_until(lambda: table_is(ISP_V4, ISP_V6), 30, "the ISP's routes in kernel table 100")
    # Exported to table 100 only: the appliance does not forward by its ISP's routes.
    main = subprocess.run(["ip", "-n", lab.oca, "route", "show", "table", "main"], capture_output=True,
                          text=True, check=True).stdout
    assert "203.0.113.0" not in main and "198.51.100.0" not in main

    store = Store.open(oca.store)
    try:
        async with aiohttp.ClientSession() as session:
            reporter = Reporter(config, store, session)
            assert await reporter.report_once() is ReportOutcome.ACCEPTED
            assert report_sink.reports[-1]["prefixes"] == {"ipv4": ISP_V4, "ipv6": ISP_V6,
                                                           "source": "kernel-table:100"}
            assert report_sink.reports[-1]["health"]["status"] == "ok"

            lab.write_isp(["203.0.113.0/24"], ["2001:db8:2::/48"])      # withdraw one of each family
            lab.reconfigure_isp()
            wait_until(lambda: table_is(["203.0.113.0/24"], ["2001:db8:2::/48"]), 30, "the withdrawal")
            assert await reporter.report_once() is ReportOutcome.ACCEPTED
            assert report_sink.reports[-1]["prefixes"]["ipv4"] == ["203.0.113.0/24"]
            assert report_sink.reports[-1]["prefixes"]["ipv6"] == ["2001:db8:2::/48"]
    finally:
        store.close()
