import pytest

from steering.fleet import FleetModel
from steering.geo import GeoDatabaseError, GeoLookup
from steering.locate import locate
from steering.prefixes import InvalidAddress

from .fleetdocs import appliance, snapshot, write_geoip


@pytest.fixture
def geo(tmp_path):
    asn_db, country_db = write_geoip(
        tmp_path,
        asn={"198.51.0.0/16": 64510, "198.51.100.0/24": 64511, "2001:db8::/32": 64520},
        country={"198.51.0.0/16": "FR", "2001:db8::/32": "AT"},
    )
    lookup = GeoLookup(asn_db, country_db)
    yield lookup
    lookup.close()


@pytest.mark.parametrize("ip, asn, country", [
    ("198.51.100.7", 64511, "FR"),        # narrower ASN network wins
    ("198.51.7.7", 64510, "FR"),
    ("2001:db8:5::1", 64520, "AT"),
    ("192.0.2.1", None, None),
    ("2001:db9::1", None, None),
])
def test_geo_lookup(geo, ip, asn, country):
    answer = geo.lookup(ip)
    assert (answer.asn, answer.country) == (asn, country)


def test_missing_or_bad_database_is_an_error(tmp_path):
    with pytest.raises(GeoDatabaseError):
        GeoLookup(tmp_path / "nope.mmdb")
    (tmp_path / "bad.mmdb").write_bytes(b"not a database")
    with pytest.raises(GeoDatabaseError):
        GeoLookup(tmp_path / "bad.mmdb")


def test_locate_prefers_bgp_then_geoip(geo):
    model = FleetModel.build(snapshot([
        appliance("isp1-a", asn=64500, country="DE", v4=["203.0.113.0/24"]),
        appliance("ixp-fr", "ixp", asn=None, country="FR", region="eu-west"),
    ]))
    bgp = locate(model, geo, "203.0.113.9")
    assert (bgp.source, bgp.asn, bgp.country, bgp.region) == ("bgp", 64500, "DE", "eu-central")
    assert bgp.matches[0].prefix == "203.0.113.0/24"
    mapped = locate(model, geo, "::ffff:198.51.100.7")       # IPv4-mapped IPv6 → IPv4 GeoIP record
    assert (mapped.address, mapped.source, mapped.asn, mapped.country, mapped.region) == \
        ("198.51.100.7", "geoip", 64511, "FR", "eu-west")
    nothing = locate(model, geo, "192.0.2.1")
    assert (nothing.source, nothing.asn, nothing.country, nothing.region) == ("none", None, None, None)
    assert locate(model, None, "198.51.100.7").source == "none"
    with pytest.raises(InvalidAddress):
        locate(model, geo, "not-an-ip")


def test_bgp_match_fills_missing_fields_from_geoip(geo):
    model = FleetModel.build(snapshot([appliance("a", asn=None, country=None, v4=["198.51.100.0/24"])]))
    client = locate(model, geo, "198.51.100.7")
    assert (client.source, client.asn, client.country) == ("bgp", 64511, "FR")


def test_a_rebuild_locates_with_the_appliances_new_asn(geo):
    """The prefix table is reused when no prefix changed; where its owners are is read from the new model."""
    first = FleetModel.build(snapshot([appliance("a", asn=64500, v4=["203.0.113.0/24"])]))
    second = FleetModel.build(snapshot([appliance("a", asn=64999, country="FR", v4=["203.0.113.0/24"])]),
                              previous=first)
    assert second.prefixes is first.prefixes
    client = locate(second, geo, "203.0.113.9")
    assert (client.asn, client.country, client.source) == (64999, "FR", "bgp")
