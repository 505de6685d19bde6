import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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


@pytest.fixture(scope="module")
def narrow_geo(tmp_path_factory):
    """Networks narrower than a /24 or /48 block beside wider ones, and an ASN database without IPv6."""
    tmp = tmp_path_factory.mktemp("geo")
    asn_db, country_db = write_geoip(
        tmp, asn={"100.64.0.0/16": 1, "100.64.3.0/26": 2, "100.64.3.64/27": 3, "100.64.4.0/24": 4,
                  "2001:db8::/32": 5, "2001:db8:0:1::/64": 6},
        country={"100.64.0.0/10": "DE", "100.64.4.128/25": "FR", "2001:db8::/33": "AT"})
    return asn_db, country_db


def _uncached(asn_db, country_db):
    return GeoLookup(asn_db, country_db, cache_entries=0)


@settings(max_examples=200, deadline=None)
@given(addresses=st.lists(st.one_of(
    st.builds("100.64.{}.{}".format, st.integers(0, 5), st.integers(0, 255)),
    st.builds("2001:db8:0:{:x}::{:x}".format, st.integers(0, 2), st.integers(0, 65535)),
    st.builds("2001:db8:{:x}::1".format, st.integers(0x7ffe, 0x8001))), min_size=1, max_size=60),
    size=st.sampled_from([1, 3, 100_000]))
def test_cached_geo_answers_equal_fresh_reads(narrow_geo, addresses, size):
    cached, fresh = GeoLookup(*narrow_geo, cache_entries=size), _uncached(*narrow_geo)
    try:
        for address in addresses:
            assert cached.lookup(address) == fresh.lookup(address), address
        assert len(cached._blocks) <= size
    finally:
        cached.close()
        fresh.close()


def test_only_blocks_one_network_covers_are_cached(narrow_geo):
    geo = GeoLookup(*narrow_geo)
    try:
        for address in ("100.64.3.5", "100.64.3.70", "100.64.4.1", "100.64.4.200", "100.64.9.9",
                        "2001:db8:0:1::5", "2001:db8:0:2::5", "2001:db8:5::1"):
            geo.lookup(address)
        # 100.64.3.0/24 holds /26 and /27 networks, 100.64.4.0/24 a /25 country, 2001:db8::/48 a /64.
        assert set(geo._blocks) == {bytes([100, 64, 9]), bytes.fromhex("20010db80005")}
    finally:
        geo.close()


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
