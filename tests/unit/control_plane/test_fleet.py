"""Inventory decisions, liveness boundaries and the snapshot's generation."""

from __future__ import annotations

import pytest

from control_plane.errors import ApiError
from control_plane.fleet import (
    ApplianceSpec,
    ApplianceState,
    DeltaInventory,
    FullInventory,
    Item,
    Patch,
    Replace,
    UnknownGeneration,
    decide_inventory,
    is_fresh,
    is_healthy,
    parse_report,
    parse_spec,
    snapshot_document,
)

ITEM = Item("t1/a.mp4", 1, "0" * 64, "ssd")


@pytest.mark.parametrize("held,inventory,expected", [
    (None, FullInventory(5, (ITEM,)), Replace((ITEM,), 5)),
    (9, FullInventory(5, ()), Replace((), 5)),                  # a rebuilt appliance may restart lower
    (40, DeltaInventory(40, 42, (ITEM,), ("x",)), Patch((ITEM,), ("x",), 42)),
    (41, DeltaInventory(40, 42, (), ()), UnknownGeneration(41, 40)),
    (None, DeltaInventory(0, 1, (), ()), UnknownGeneration(None, 0)),
])
def test_decide_inventory(held, inventory, expected):
    assert decide_inventory(held, inventory) == expected


SPEC = ApplianceSpec("a", "embedded", "s", "r", "DE", 1, "http://x", 1, 1, 1)
ORIGIN = ApplianceSpec("o", "origin", "s", "r", "DE", 1, "http://o", 0, 0, 1)


@pytest.mark.parametrize("state,now,fresh,healthy", [
    (ApplianceState(SPEC), 100.0, False, False),                                       # never reported
    (ApplianceState(SPEC, last_report_at=10.0, health_status="ok"), 100.0, True, True),  # exactly 90 s
    (ApplianceState(SPEC, last_report_at=10.0, health_status="ok"), 100.001, False, False),
    (ApplianceState(SPEC, last_report_at=99.0, health_status="degraded"), 100.0, True, True),
    (ApplianceState(SPEC, last_report_at=99.0, health_status="failed"), 100.0, True, False),
    (ApplianceState(ORIGIN), 10**9, True, True),                                      # origins: always fresh
    (ApplianceState(ORIGIN, last_report_at=0.0, health_status="failed"), 10**9, True, False),
])
def test_liveness(state, now, fresh, healthy):
    assert is_fresh(state, now, 90.0) is fresh
    assert is_healthy(state, now, 90.0) is healthy


def test_snapshot_generation_tracks_content_not_time():
    s = ApplianceState(SPEC, last_report_at=100.0, health_status="ok", load_ratio=0.2,
                       prefixes={"ipv4": ["203.0.113.0/24"], "ipv6": []}, keys=frozenset({"t1/b", "t1/a"}))
    one = snapshot_document([s], {"t1": ["t1/b", "t1/a"]}, 110.0, 90.0)
    two = snapshot_document([s], {"t1": ["t1/a", "t1/b"]}, 120.0, 90.0)
    assert one["generation"] == two["generation"] and one["generated_at"] != two["generated_at"]
    assert one["appliances"][0]["keys"] == ["t1/a", "t1/b"]
    stale = snapshot_document([s], {"t1": ["t1/a", "t1/b"]}, 191.0, 90.0)
    assert stale["generation"] != one["generation"] and stale["appliances"][0]["healthy"] is False
    loaded = snapshot_document([ApplianceState(SPEC, last_report_at=100.0, health_status="ok", load_ratio=0.3,
                                               prefixes=s.prefixes, keys=s.keys)], {"t1": ["t1/a", "t1/b"]},
                               110.0, 90.0)
    assert loaded["generation"] != one["generation"]


def test_report_duplicate_keys_and_field_paths():
    body = {"version": 1, "appliance_id": "a", "sent_at": "2027-01-01T00:00:00Z",
            "health": {"status": "ok"}, "load": {"ratio": 0.5},
            "inventory": {"kind": "delta", "base_generation": 1, "generation": 2,
                          "added": [{"key": "t/a", "size": 1, "sha256": "a" * 64, "tier": "nvme"}]}}
    with pytest.raises(ApiError) as e:
        parse_report("a", body)
    assert e.value.field == "inventory.added[0].tier"
    body["inventory"]["added"][0]["tier"] = "hdd"
    report = parse_report("a", body)
    assert report.inventory == DeltaInventory(1, 2, (Item("t/a", 1, "a" * 64, "hdd"),), ())
    assert report.prefixes == {"ipv4": [], "ipv6": [], "source": None}


def test_spec_base_url_normalised():
    spec = parse_spec({"id": "a", "kind": "ixp", "site": "s", "region": "r", "country": "NL", "asn": 1,
                       "base_url": "https://x.example:8443/", "link_capacity_bps": 1})
    assert spec.base_url == "https://x.example:8443" and (spec.capacity_ssd, spec.capacity_hdd) == (0, 0)
