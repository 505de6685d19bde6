"""GeoIP2 lookups (MaxMind DB format): the client's ASN and country when no BGP prefix covers it.

Databases are read with `maxminddb` (the C reader when available). Two kinds are used, each optional:
an ASN or ISP database (GeoLite2-ASN / GeoIP2-ISP: ``autonomous_system_number``) and a Country or City
database (``country.iso_code``, falling back to ``registered_country.iso_code``). Addresses arrive
normalized by `steering.prefixes.normalize_ip`, so an IPv4-mapped IPv6 address is already IPv4: the
MaxMind readers do not map ``::ffff:a.b.c.d`` to the IPv4 subtree themselves (../shared/BGP_NOTES.md).
"""

from __future__ import annotations

import logging
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
    """Looks up ASN and country; every miss or malformed record answers None for that field."""

    def __init__(self, asn_db: Path | None = None, country_db: Path | None = None) -> None:
        self._asn = _open(asn_db)
        self._country = _open(country_db)

    def close(self) -> None:
        for reader in (self._asn, self._country):
            if reader is not None:
                reader.close()

    def lookup(self, address: str) -> GeoAnswer:
        """`address` is a normalized IP string (IPv4 dotted quad or IPv6)."""
        return GeoAnswer(self._lookup_asn(address), self._lookup_country(address))

    def _lookup_asn(self, address: str) -> int | None:
        record = self._get(self._asn, address)
        asn = record.get("autonomous_system_number") if isinstance(record, dict) else None
        return asn if isinstance(asn, int) and not isinstance(asn, bool) else None

    def _lookup_country(self, address: str) -> str | None:
        record = self._get(self._country, address)
        if not isinstance(record, dict):
            return None
        for field in ("country", "registered_country"):
            entry = record.get(field)
            code = entry.get("iso_code") if isinstance(entry, dict) else None
            if isinstance(code, str) and len(code) == 2:
                return code.upper()
        return None

    @staticmethod
    def _get(reader: Any, address: str) -> Any:
        if reader is None:
            return None
        try:
            return reader.get(address)
        except ValueError:
            # An IPv6 address looked up in an IPv4-only database.
            return None
