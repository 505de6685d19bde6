"""GeoIP2 lookups (MaxMind DB format): the client's ASN and country when no BGP prefix covers it.

Databases are read with `maxminddb` (the C reader when available). Two kinds are used, each optional:
an ASN or ISP database (GeoLite2-ASN / GeoIP2-ISP: ``autonomous_system_number``) and a Country or City
database (``country.iso_code``, falling back to ``registered_country.iso_code``). Addresses arrive
normalized by `steering.prefixes.normalize_ip`, so an IPv4-mapped IPv6 address is already IPv4: the
MaxMind readers do not map ``::ffff:a.b.c.d`` to the IPv4 subtree themselves (../shared/BGP_NOTES.md).
"""

from __future__ import annotations

import logging
import socket
from collections import OrderedDict
from pathlib import Path
from typing import Any, NamedTuple

import maxminddb

log = logging.getLogger(__name__)


class GeoDatabaseError(Exception):
    """A GeoIP database file could not be opened or is not a MaxMind DB."""


class GeoAnswer(NamedTuple):
    asn: int | None
    country: str | None    # ISO 3166-1 alpha-2, upper case


NO_ANSWER = GeoAnswer(None, None)


def _open(path: Path | None) -> Any:
    if path is None:
        return None
    try:
        return maxminddb.open_database(str(path), maxminddb.MODE_AUTO)
    except (OSError, ValueError, maxminddb.InvalidDatabaseError) as e:
        raise GeoDatabaseError(f"{path}: cannot open MaxMind database: {e}") from None


class GeoLookup:
    """Looks up ASN and country; every miss or malformed record answers None for that field.

    Answers are kept per /24 (IPv4) or /48 (IPv6) block when every database says the network it found
    covers the whole block, so every address in it has the same records: the cache is exact. Why: a
    lookup decodes whole records into dicts (a City record carries names in a dozen languages), 3.4–3.8 µs
    here; clients arrive in blocks (an ISP's customers), and a cached answer costs 0.5–0.8 µs.
    Bounded to `cache_entries` blocks, oldest dropped first.
    """

    def __init__(self, asn_db: Path | None = None, country_db: Path | None = None,
                 cache_entries: int = 100_000) -> None:
        self._asn = _open(asn_db)
        self._country = _open(country_db)
        self.cache_entries = cache_entries
        self._blocks: OrderedDict[bytes, GeoAnswer] = OrderedDict()

    def close(self) -> None:
        for reader in (self._asn, self._country):
            if reader is not None:
                reader.close()

    def lookup(self, address: str) -> GeoAnswer:
        """`address` is a normalized IP string (IPv4 dotted quad or IPv6)."""
        v6 = ":" in address
        block = socket.inet_pton(socket.AF_INET6 if v6 else socket.AF_INET, address)[:6 if v6 else 3]
        answer = self._blocks.get(block)
        if answer is None:
            (asn_record, asn_bits), (country_record, country_bits) = (
                self._get(self._asn, address), self._get(self._country, address))
            answer = GeoAnswer(_asn(asn_record), _country(country_record))
            if max(asn_bits, country_bits) <= (48 if v6 else 24) and self.cache_entries > 0:
                if len(self._blocks) >= self.cache_entries:
                    self._blocks.popitem(last=False)
                self._blocks[block] = answer
        return answer

    @staticmethod
    def _get(reader: Any, address: str) -> tuple[Any, int]:
        """The record and the prefix length of the network it covers (0 without a database)."""
        if reader is None:
            return None, 0
        try:
            record, bits = reader.get_with_prefix_len(address)
        except ValueError:
            # An IPv6 address looked up in an IPv4-only database: no answer, for any address of its block.
            return None, 0
        return record, bits


def _asn(record: Any) -> int | None:
    asn = record.get("autonomous_system_number") if isinstance(record, dict) else None
    return asn if isinstance(asn, int) and not isinstance(asn, bool) else None


def _country(record: Any) -> str | None:
    if not isinstance(record, dict):
        return None
    for field in ("country", "registered_country"):
        entry = record.get(field)
        code = entry.get("iso_code") if isinstance(entry, dict) else None
        if isinstance(code, str) and len(code) == 2:
            return code.upper()
    return None

