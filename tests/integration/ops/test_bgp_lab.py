"""The rendered BIRD configuration in a real eBGP session (two network namespaces, two BIRDs).

An "ISP" BIRD announces valid client prefixes plus a default route, bogons and too-specific
prefixes; the appliance runs the bird.conf the oca_appliance role renders (through Ansible, with
lab neighbours). Checked: only the valid prefixes reach kernel table 100 (IPv4 routes carrying the
origin AS as realm), the main table stays untouched, the max-prefix limit holds, and the appliance
announces nothing back. Needs root (network namespaces).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration.ops.conftest import REPO, checkout_visible, require, run_playbook

pytestmark = [pytest.mark.root, pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces")]

ISP_AS, OCA_AS = 64500, 64501
VALID4 = {"81.0.0.0/16", "81.1.0.0/24", "81.4.0.0/22"}
INVALID4 = {"0.0.0.0/0", "10.1.0.0/16", "198.51.100.0/24", "81.2.3.0/25"}
VALID6 = {"2a00:1000::/32", "2a00:2000::/48", "2a00:4000::/40"}
INVALID6 = {"::/0", "fd00::/8", "2a00:3000::/64", "2001:db8:9::/48"}
V6_LIMIT = 2   # fewer than len(VALID6): the limit must hold


def ip(*args: str) -> str:
    return subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=10).stdout


def wait_for(what: str, check: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.1)


@dataclass
class Bird:
    netns: str
    sock: Path
    proc: subprocess.Popen

    def cli(self, command: str) -> str:
        return subprocess.run(["birdc", "-s", str(self.sock), *command.split()], capture_output=True,
                              text=True, timeout=10).stdout

    def import_updates(self, protocol: str) -> dict[str, int]:
        """`show protocols all`: the channel's "Import updates:" counters (received, ..., accepted)."""
        out = self.cli(f"show protocols all {protocol}")
        m = re.search(r"Import updates:\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)", out)
        if not m:
            return {}
        return dict(zip(("received", "rejected", "filtered", "ignored", "accepted"), map(int, m.groups()),
                        strict=True))


def start_bird(netns: str, conf: Path, tmp: Path, name: str) -> Bird:
    sock = tmp / f"{name}.ctl"
    with open(tmp / f"{name}.log", "wb") as log:   # the child keeps its own copy of the descriptor
        proc = subprocess.Popen(["ip", "netns", "exec", netns, "bird", "-f", "-c", str(conf), "-s", str(sock),
                                 "-P", str(tmp / f"{name}.pid")], stdout=log, stderr=subprocess.STDOUT)
    bird = Bird(netns, sock, proc)
    wait_for(f"{name} BIRD control socket", lambda: proc.poll() is None and "ready" in bird.cli("show status"), 15)
    return bird


def isp_config() -> str:
    statics4 = "\n".join(f"  route {p} blackhole;" for p in sorted(VALID4 | INVALID4))
    statics6 = "\n".join(f"  route {p} blackhole;" for p in sorted(VALID6 | INVALID6))
    session = """
protocol bgp {name} {{
  local as {isp_as}; neighbor {addr} as {oca_as};
  hold time 9; keepalive time 3; connect delay time 1; connect retry time 2;
  {afi} {{ import all; export where source = RTS_STATIC; }};
}}"""
    return f"""router id 192.0.2.1;
protocol device {{ scan time 1; }}
protocol static s4 {{ ipv4; {statics4} }}
protocol static s6 {{ ipv6; {statics6} }}
{session.format(name="oca4", isp_as=ISP_AS, oca_as=OCA_AS, addr="192.0.2.2", afi="ipv4")}
{session.format(name="oca6", isp_as=ISP_AS, oca_as=OCA_AS, addr="2001:db8:ffff::2", afi="ipv6")}
"""


@pytest.fixture(scope="module")
def appliance_conf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require("ansible-playbook")
    return _render_appliance_config(tmp_path_factory.mktemp("bird-lab"))


@pytest.fixture
def lab(tmp_path: Path, appliance_conf: Path) -> Iterator[tuple[Bird, Bird]]:
    require("ip", "bird", "birdc")
    tag = secrets.token_hex(3)
    isp_ns, oca_ns, veth = f"ocaisp-{tag}", f"ocaapp-{tag}", f"ov{tag}"
    conf = appliance_conf
    birds: list[Bird] = []
    ip("netns", "add", isp_ns)
    ip("netns", "add", oca_ns)
    try:
        ip("link", "add", f"{veth}i", "netns", isp_ns, "type", "veth", "peer", "name", f"{veth}o", "netns", oca_ns)
        for ns, dev, v4, v6 in ((isp_ns, f"{veth}i", "192.0.2.1/24", "2001:db8:ffff::1/64"),
                                (oca_ns, f"{veth}o", "192.0.2.2/24", "2001:db8:ffff::2/64")):
            ip("-n", ns, "link", "set", "lo", "up")
            ip("-n", ns, "addr", "add", v4, "dev", dev)
            ip("-n", ns, "addr", "add", v6, "dev", dev, "nodad")
            ip("-n", ns, "link", "set", dev, "up")
        (tmp_path / "isp.conf").write_text(isp_config())
        birds.append(start_bird(isp_ns, tmp_path / "isp.conf", tmp_path, "isp"))
        birds.append(start_bird(oca_ns, conf, tmp_path, "oca"))
        yield birds[0], birds[1]
    finally:
        for b in birds:
            b.proc.terminate()
            try:
                b.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                b.proc.kill()
                b.proc.wait()
        subprocess.run(["ip", "netns", "del", isp_ns], capture_output=True)
        subprocess.run(["ip", "netns", "del", oca_ns], capture_output=True)


def _render_appliance_config(tmp_path: Path) -> Path:
    """bird.conf from the role, with the lab's neighbours (lab timers for a fast test)."""
    extra = {"oca_system": False, "ansible_connection": "local", "ansible_python_interpreter": "/usr/bin/python3",
             "oca_prefix": str(tmp_path / "prefix"), "oca_bgp_router_id": "192.0.2.2", "oca_bgp_local_as": OCA_AS,
             "oca_bgp_hold_time": 9, "oca_bgp_keepalive_time": 3,
             "oca_bgp_neighbors": [
                 {"name": "r1", "address": "192.0.2.1", "as": ISP_AS, "max_prefixes": 1000},
                 {"name": "r1_v6", "address": "2001:db8:ffff::1", "as": ISP_AS, "max_prefixes": V6_LIMIT}]}
    run = run_playbook("appliance.yml", "--tags", "bird", "--limit", "isp1-a", "-e", json.dumps(extra))
    assert run.returncode == 0, run.output[-3000:]
    return tmp_path / "prefix/etc/bird/bird.conf"


def table(netns: str, family: str, which: str) -> list[str]:
    proc = subprocess.run(["ip", "-n", netns, family, "route", "show", "table", which], capture_output=True,
                          text=True, timeout=10)
    if proc.returncode != 0 and "table does not exist" in proc.stderr:
        return []   # the kernel drops an IPv4 table with its last route
    assert proc.returncode == 0, proc.stderr
    return [line for line in proc.stdout.splitlines() if line]


def prefixes(lines: list[str]) -> set[str]:
    out = set()
    for line in lines:
        dst = line.split()[0]
        out.add("0.0.0.0/0" if dst == "default" and "." in line else "::/0" if dst == "default" else dst)
    return out


def test_only_valid_client_prefixes_reach_kernel_table_100(lab: tuple[Bird, Bird]) -> None:
    isp, oca = lab
    total4, total6 = len(VALID4 | INVALID4), len(VALID6 | INVALID6)
    # Every announced route has reached the appliance's filters (accepted or filtered).
    wait_for("IPv4 routes processed", lambda: oca.import_updates("isp_r1").get("received") == total4)
    wait_for("IPv6 routes processed", lambda: oca.import_updates("isp_r1_v6").get("received") == total6)
    wait_for("IPv4 routes in table 100", lambda: len(table(oca.netns, "-4", "100")) == len(VALID4), 10)
    wait_for("IPv6 routes in table 100", lambda: len(table(oca.netns, "-6", "100")) == V6_LIMIT, 10)

    v4 = table(oca.netns, "-4", "100")
    assert prefixes(v4) == VALID4
    # The origin AS rides in the realm (RTA_FLOW): the kernel route has no AS path.
    assert all(f"realm {ISP_AS}" in line for line in v4), v4
    v6 = prefixes(table(oca.netns, "-6", "100"))
    # max_prefixes=2 with action block: two of the three valid prefixes, never an invalid one.
    assert len(v6) == V6_LIMIT and v6 <= VALID6, v6

    # Nothing learned goes into the main table: the appliance never forwards by these routes.
    main = prefixes(table(oca.netns, "-4", "main")) | prefixes(table(oca.netns, "-6", "main"))
    assert not main & (VALID4 | INVALID4 | VALID6 | INVALID6), main
    # The appliance announces nothing to the ISP (the ISP's sessions import all).
    assert isp.import_updates("oca4").get("received") == 0
    assert isp.import_updates("oca6").get("received") == 0


def test_reporter_reads_table_100_without_any_capability(lab: tuple[Bird, Bird]) -> None:
    """oca-report.service keeps no capability: an RTM_GETROUTE dump needs none. The reporter's own
    reader runs inside the appliance namespace as an unprivileged uid with every capability dropped."""
    require("setpriv")
    _, oca = lab
    wait_for("IPv4 routes in table 100", lambda: len(table(oca.netns, "-4", "100")) == len(VALID4))
    wait_for("IPv6 routes in table 100", lambda: len(table(oca.netns, "-6", "100")) == V6_LIMIT)
    code = ("import json; from oca.kernel_routes import read_table; r = read_table(100); "
            "print(json.dumps([list(r.ipv4), list(r.ipv6)]))")
    site = next((Path(sys.prefix) / "lib").glob("python3.*/site-packages"))
    proc = subprocess.run(
        ["ip", "netns", "exec", oca.netns, *checkout_visible([
            "setpriv", "--reuid=64903", "--regid=64903", "--clear-groups",
            "--no-new-privs", "--bounding-set=-all", "--inh-caps=-all",
            # ... and under oca-report.service's seccomp filter and address families (unit_sandbox.py).
            "/usr/bin/python3", str(Path(__file__).with_name("unit_sandbox.py")),
            str(REPO / "systemd/oca-report.service"), "/usr/bin/python3", "-c", code])],
        capture_output=True, text=True, timeout=60, cwd="/",
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": f"{REPO}:{site}", "PYTHONDONTWRITEBYTECODE": "1"})
    assert proc.returncode == 0, proc.stderr
    ipv4, ipv6 = json.loads(proc.stdout)
    assert set(ipv4) == VALID4
    assert set(ipv6) == prefixes(table(oca.netns, "-6", "100"))


def test_routes_leave_table_100_when_bird_stops(lab: tuple[Bird, Bird]) -> None:
    _, oca = lab
    wait_for("IPv4 routes in table 100", lambda: len(table(oca.netns, "-4", "100")) == len(VALID4))
    oca.proc.terminate()
    oca.proc.wait(timeout=10)
    # persist off: a stopped BIRD leaves no stale client prefixes behind.
    assert table(oca.netns, "-4", "100") == [] and table(oca.netns, "-6", "100") == []
