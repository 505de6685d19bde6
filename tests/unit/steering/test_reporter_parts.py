from pathlib import Path

import pytest

from oca.config import ConfigError, Section
from oca.kernel_routes import KernelRoutes
from oca.reporter import (
    TxRate,
    count_established,
    health_section,
    load_section,
    parse_bitrate,
    prefixes_section,
    read_reporter_config,
)
from oca.store import DiskUsage


@pytest.mark.parametrize("value, bps", [
    (1000, 1000), ("10Gbps", 10**10), ("400G", 4 * 10**11), ("1.5 Mbit", 1_500_000), ("100mbit/s", 10**8),
    ("25", 25)])
def test_parse_bitrate(value, bps):
    assert parse_bitrate(value) == bps


@pytest.mark.parametrize("value", [0, -1, True, "fast", "10GB", "0G", 1.5, ""])
def test_parse_bitrate_rejects(value):
    with pytest.raises(ValueError):
        parse_bitrate(value)


def disk(i, state="ok", reason=""):
    return DiskUsage(f"ssd/{i}", "ssd", Path(f"/d{i}"), 100, 10 * i, state, reason)


@pytest.mark.parametrize("usage, errors, status", [
    ([disk(0), disk(1)], [], "ok"),
    ([disk(0), disk(1, "failed", "EIO")], [], "degraded"),
    ([disk(0)], ["kernel table 100: EPERM"], "degraded"),
    ([disk(0, "failed"), disk(1, "failed")], [], "failed"),
    ([], [], "ok"),
])
def test_health_status(usage, errors, status):
    health = health_section(usage, errors)
    assert health["status"] == status
    assert [d["id"] for d in health["disks"]] == [d.id for d in usage]


def test_health_names_failed_disks():
    health = health_section([disk(0), disk(1, "failed", "marker unreadable")], [])
    assert health["errors"] == ["disk ssd/1 failed: marker unreadable"]
    assert health["disks"][1] == {"id": "ssd/1", "tier": "ssd", "state": "failed", "capacity_bytes": 100,
                                  "used_bytes": 10}


def test_load_section():
    assert load_section(2_000_000_000, 10_000_000_000, 7) == {
        "tx_bps": 2_000_000_000, "link_capacity_bps": 10_000_000_000, "ratio": 0.2, "active_connections": 7}
    assert "active_connections" not in load_section(0, 10, None)


def test_prefixes_merge_kernel_and_static():
    routes = KernelRoutes(("203.0.113.0/24",), ("2001:db8::/32",))
    assert prefixes_section(routes, ["2001:DB8:1::/48", "203.0.113.0/24"], 100) == {
        "ipv4": ["203.0.113.0/24"], "ipv6": ["2001:db8:1::/48", "2001:db8::/32"],   # sorted as text
        "source": "kernel-table:100+static"}
    assert prefixes_section(None, [], None) == {"ipv4": [], "ipv6": [], "source": "none"}


def test_tx_rate():
    rate = TxRate()
    assert rate.update(1000, 10.0) is None
    assert rate.update(2000, 12.0) == 4000
    assert rate.update(500, 13.0) is None          # counter reset (driver reload): start again
    assert rate.update(1500, 13.0) is None         # no time passed
    assert rate.update(1500, 14.0) == 0


def test_count_established(tmp_path):
    header = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
    (tmp_path / "tcp").write_text(header + "".join([
        "   0: 0100007F:1F90 0100007F:D2A4 01 00000000:00000000 00:00000000 00000000     0        0 1\n",
        "   1: 0100007F:1F90 0100007F:D2A6 01 00000000:00000000 00:00000000 00000000     0        0 2\n",
        "   2: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 3\n",
        "   3: 0100007F:1F91 0100007F:D2A7 01 00000000:00000000 00:00000000 00000000     0        0 4\n",
    ]))
    (tmp_path / "tcp6").write_text(header + (
        "   0: 00000000000000000000000001000000:1F90 00000000000000000000000001000000:A000 01 "
        "00000000:00000000 00:00000000 00000000     0        0 5\n"))
    assert count_established(8080, tmp_path) == 3
    assert count_established(9999, tmp_path) == 0


BASE = {"appliance_id": "isp1-a", "control_plane_url": "http://cp:8000/", "token": "t"}


def test_reporter_config_defaults():
    config = read_reporter_config(Section(dict(BASE), "oca.toml", "reporter"))
    assert config.report_url == "http://cp:8000/api/v1/appliances/isp1-a/report"
    assert (config.interval, config.route_table, config.route_reader, config.link_capacity_bps) == \
        (30.0, 100, "netlink", 10**10)
    assert config.prefixes_static == () and config.serve_port == 8080 and config.netns is None


@pytest.mark.parametrize("change, key", [
    ({"appliance_id": "a b"}, "reporter.appliance_id"),
    ({"control_plane_url": "cp:8000"}, "reporter.control_plane_url"),
    ({"token": None}, "reporter.token"),
    ({"token_file": "x"}, "reporter.token_file"),
    ({"link_capacity": "fast"}, "reporter.link_capacity"),
    ({"route_reader": "bird"}, "reporter.route_reader"),
    ({"route_table": -1}, "reporter.route_table"),
    ({"prefixes_static": ["203.0.113.1/24"]}, "reporter.prefixes_static[0]"),
    ({"interval": "0s"}, "reporter.interval"),
    ({"intreval": "5s"}, "reporter.intreval"),
])
def test_reporter_config_errors(change, key):
    data = {**BASE, **change}
    data = {k: v for k, v in data.items() if v is not None}
    with pytest.raises(ConfigError) as info:
        read_reporter_config(Section(data, "oca.toml", "reporter"))
    assert info.value.key == key
