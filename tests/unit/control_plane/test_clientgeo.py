"""Client address and country: GeoIP, then the trusted proxy's header, then "unknown"."""

from __future__ import annotations

import ipaddress

import pytest

from control_plane.clientgeo import client_ip, resolve_country

PROXIES = (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("fd00::/8"))
GEO = {"198.51.100.7": "nl", "2001:db8::1": "JP"}.get


@pytest.mark.parametrize("peer,xff,expected", [
    ("203.0.113.9", "198.51.100.7", "203.0.113.9"),                # untrusted peer: the header is ignored
    ("10.1.1.1", "198.51.100.7", "198.51.100.7"),
    ("10.1.1.1", "6.6.6.6, 198.51.100.7, 10.2.2.2", "198.51.100.7"),   # right-most untrusted hop
    ("10.1.1.1", "", "10.1.1.1"),
    ("10.1.1.1", "garbage", "10.1.1.1"),
    ("fd00::5", "2001:db8::1", "2001:db8::1"),
    (None, "1.2.3.4", None),
])
def test_client_ip(peer, xff, expected):
    assert client_ip(peer, {"X-Forwarded-For": xff}, trusted_proxies=PROXIES) == expected


@pytest.mark.parametrize("peer,headers,lookup,expected", [
    ("198.51.100.7", {}, GEO, "NL"),                                        # GeoIP first
    ("10.0.0.1", {"X-Forwarded-For": "198.51.100.7", "X-Client-Country": "FR"}, GEO, "NL"),
    ("10.0.0.1", {"X-Forwarded-For": "192.0.2.1", "X-Client-Country": "fr"}, GEO, "FR"),   # not in GeoIP
    ("10.0.0.1", {"X-Client-Country": "FR"}, None, "FR"),
    ("10.0.0.1", {"X-Client-Country": "FRA"}, None, "unknown"),
    ("10.0.0.1", {"X-Client-Country": "1A"}, None, "unknown"),
    ("192.0.2.1", {"X-Client-Country": "FR"}, None, "unknown"),              # untrusted peer
    ("192.0.2.1", {}, GEO, "unknown"),
])
def test_resolve_country(peer, headers, lookup, expected):
    assert resolve_country(peer, headers, lookup=lookup, trusted_proxies=PROXIES) == expected
