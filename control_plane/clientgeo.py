"""Which country a client is in: GeoIP when configured, else a trusted proxy's header, else "unknown".

`resolve_country` is pure (the GeoIP lookup is injected) and reusable by every route that needs
the client's country (telemetry regions, the playback manifest's licence check → 451).

The client address is the TCP peer, unless the peer is a trusted proxy: then the right-most
address in the forwarded header that is not itself a trusted proxy (RFC 7239 §5.2 / de-facto
X-Forwarded-For: each proxy appends the address it received from, so only the entries added by
our own proxies can be believed).
"""

from __future__ import annotations

import functools
import ipaddress
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

UNKNOWN = "unknown"
log = logging.getLogger("oca.control.geo")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Lookup = Callable[[str], str | None]


@functools.lru_cache(maxsize=4096)
def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        return None


def _trusted(addr, proxies: Sequence[Network]) -> bool:
    return addr is not None and any(addr in net for net in proxies)


def client_ip(peer: str | None, headers: Mapping[str, str], *, trusted_proxies: Sequence[Network],
              forwarded_header: str = "X-Forwarded-For") -> str | None:
    """The client's address as text, or None when the peer is unknown."""
    peer_addr = _ip(peer) if peer else None
    if not _trusted(peer_addr, trusted_proxies):
        return str(peer_addr) if peer_addr else None
    hops = [h for h in (headers.get(forwarded_header) or "").split(",") if h.strip()]
    for hop in reversed(hops):
        addr = _ip(hop)
        if addr is None:
            break
        if not _trusted(addr, trusted_proxies):
            return str(addr)
    return str(peer_addr)


def resolve_country(peer: str | None, headers: Mapping[str, str], *, lookup: Lookup | None,
                    trusted_proxies: Sequence[Network], country_header: str = "X-Client-Country",
                    forwarded_header: str = "X-Forwarded-For") -> str:
    """ISO 3166-1 alpha-2 country (upper case) of the client, or ``"unknown"``."""
    if lookup is None and not trusted_proxies:
        return UNKNOWN          # nothing configured that could tell: skip parsing addresses
    ip = client_ip(peer, headers, trusted_proxies=trusted_proxies, forwarded_header=forwarded_header)
    if lookup is not None and ip is not None:
        country = lookup(ip)
        if country:
            return country.upper()
    if _trusted(_ip(peer) if peer else None, trusted_proxies):
        value = (headers.get(country_header) or "").strip().upper()
        if len(value) == 2 and value.isascii() and value.isalpha():
            return value
    return UNKNOWN


class GeoIPCountry:
    """A `Lookup` over a MaxMind country (or city) database opened with maxminddb."""

    def __init__(self, path: Path) -> None:
        import maxminddb

        self._reader = maxminddb.open_database(str(path))

    def __call__(self, ip: str) -> str | None:
        try:
            record = self._reader.get(ip)
        except ValueError:
            return None
        if not isinstance(record, dict):
            return None
        for key in ("country", "registered_country"):
            iso = (record.get(key) or {}).get("iso_code")
            if iso:
                return str(iso)
        return None

    def close(self) -> None:
        self._reader.close()
