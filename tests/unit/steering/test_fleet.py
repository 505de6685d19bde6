import copy
import json

import pytest

from steering.fleet import FleetModel, Kind, ModelHolder, SnapshotError

from .fleetdocs import appliance, snapshot


def good() -> dict:
    return snapshot([
        appliance("isp1-a", v4=["203.0.113.0/24"], v6=["2001:db8::/32"], keys=["t1/a.mp4", "t1/b.mp4"]),
        appliance("isp1-b", keys=["t1/a.mp4"]),
        appliance("ixp-1", "ixp", asn=None, region="eu-central", country="de"),
        appliance("origin", "origin", asn=None, country=None, region=None),
    ])


def test_build_indexes_groups_titles_and_prefixes():
    model = FleetModel.build(good())
    a, b, ixp, origin = model.appliances
    assert a.kind is Kind.EMBEDDED and a.titles == frozenset({"t1"}) and a.index == 0
    assert b.titles == frozenset()                       # holds only one of t1's two renditions
    assert model.embedded_by_asn[64500].members == (a, b)
    assert model.embedded_by_asn[64500].common_keys == {"t1/a.mp4"}        # held by both a and b
    assert model.ixp_by_country["DE"].members == (ixp,) and model.ixp_by_region["eu-central"].members == (ixp,)
    assert model.origins.members == (origin,)
    assert model.holds_key(origin, "t1/a.mp4") and not model.holds_key(origin, "t9/x.mp4")
    assert model.holds_title(origin, "t1") and not model.holds_title(b, "t1")
    assert model.prefixes.counts == {"ipv4": 1, "ipv6": 1}
    assert model.country_region == {"DE": "eu-central"}


def test_configured_country_regions_override_the_derived_ones():
    model = FleetModel.build(good(), country_region={"DE": "eu-west", "AT": "eu-central"})
    assert model.country_region == {"DE": "eu-west", "AT": "eu-central"}


def _set(path, value):
    def change(doc):
        target = doc
        for part in path[:-1]:
            target = target[part]
        if value is _DELETE:
            del target[path[-1]]
        else:
            target[path[-1]] = value
    return change


_DELETE = object()


@pytest.mark.parametrize("change, where", [
    (_set(["version"], 2), "version"),
    (_set(["version"], _DELETE), "version"),
    (_set(["generation"], 7), "generation"),
    (_set(["appliances"], {}), "appliances"),
    (_set(["appliances", 0, "id"], _DELETE), "appliances[0].id"),
    (_set(["appliances", 1, "id"], "isp1-a"), "appliances[1].id"),
    (_set(["appliances", 0, "kind"], "cache"), "appliances[0].kind"),
    (_set(["appliances", 0, "base_url"], "ftp://x"), "appliances[0].base_url"),
    (_set(["appliances", 0, "asn"], True), "appliances[0].asn"),
    (_set(["appliances", 0, "asn"], "64500"), "appliances[0].asn"),
    (_set(["appliances", 0, "healthy"], 1), "appliances[0].healthy"),
    (_set(["appliances", 0, "load_ratio"], -0.1), "appliances[0].load_ratio"),
    (_set(["appliances", 0, "load_ratio"], float("nan")), "appliances[0].load_ratio"),
    (_set(["appliances", 0, "load_ratio"], 10**400), "appliances[0].load_ratio"),
    (_set(["appliances", 0, "prefixes", "ipv4"], ["203.0.113.1/24"]), "appliances[0].prefixes.ipv4[0]"),
    (_set(["appliances", 0, "prefixes", "ipv4"], ["2001:db8::/32"]), "appliances[0].prefixes.ipv4[0]"),
    (_set(["appliances", 0, "prefixes", "ipv6"], ["10.0.0.0/8"]), "appliances[0].prefixes.ipv6[0]"),
    (_set(["appliances", 0, "keys"], ["t1/a.mp4", 5]), "appliances[0].keys[1]"),
    (_set(["appliances", 0], "isp1-a"), "appliances[0]"),
    (_set(["titles", "t1"], "t1/a.mp4"), "titles.t1"),
])
def test_invalid_snapshots_name_the_field(change, where):
    doc = copy.deepcopy(good())
    change(doc)
    with pytest.raises(SnapshotError) as info:
        FleetModel.build(doc)
    assert info.value.where == where


@pytest.mark.parametrize("body", [b"", b"{", b"\xff\xfe", b"[]", b"null", b'"x"'])
def test_garbage_bodies_are_snapshot_errors(body):
    with pytest.raises(SnapshotError):
        FleetModel.from_json(body)


def test_from_json_round_trip():
    assert FleetModel.from_json(json.dumps(good()).encode()).generation == "g1"


def test_holder_swaps_and_ages_with_the_injected_clock():
    now = [100.0]
    holder = ModelHolder(lambda: now[0])
    assert holder.model is None and holder.age() is None
    holder.confirm()                                    # nothing to confirm yet
    assert holder.age() is None
    model = FleetModel.build(good())
    holder.swap(model)
    now[0] = 130.0
    assert holder.model is model and holder.age() == 30.0
    holder.confirm()
    assert holder.age() == 0.0


def test_rebuild_reuses_unchanged_keys_and_prefixes():
    first = FleetModel.build(good())
    doc = copy.deepcopy(good())
    doc["generation"] = "g2"
    doc["appliances"][0]["load_ratio"] = 0.9              # what changes in nearly every snapshot
    doc["appliances"][1]["healthy"] = False
    second = FleetModel.build(doc, previous=first)
    assert second.prefixes is first.prefixes
    assert second.appliances[0].keys is first.appliances[0].keys and second.appliances[0].load_ratio == 0.9
    assert second.embedded_by_asn[64500].members == (second.appliances[0],)     # eligibility recomputed

    doc["appliances"][1]["keys"] = ["t1/a.mp4", "t1/b.mp4"]                   # inventory changed
    doc["appliances"][1]["prefixes"]["ipv4"] = ["198.51.100.0/24"]            # prefixes changed
    third = FleetModel.build(doc, previous=second)
    assert third.prefixes is not second.prefixes
    assert [m.prefix for m in third.prefixes.lookup("198.51.100.1", 32)] == ["198.51.100.0/24"]
    assert third.appliances[1].titles == {"t1"} and third.appliances[0].keys is second.appliances[0].keys

    doc["titles"] = {"t1": ["t1/a.mp4"]}                                      # catalog changed: recompute
    fourth = FleetModel.build(doc, previous=third)
    assert fourth.appliances[0].keys is not third.appliances[0].keys
    assert fourth.appliances[0].titles == {"t1"}


def test_rebuild_still_validates_changed_prefixes():
    first = FleetModel.build(good())
    doc = copy.deepcopy(good())
    doc["appliances"][0]["prefixes"]["ipv4"] = ["203.0.113.1/24"]
    with pytest.raises(SnapshotError) as info:
        FleetModel.build(doc, previous=first)
    assert info.value.where == "appliances[0].prefixes.ipv4[0]"
    doc["appliances"][0]["prefixes"]["ipv4"] = [{}]
    with pytest.raises(SnapshotError):
        FleetModel.build(doc, previous=first)
