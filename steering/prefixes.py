"""Longest-prefix match from client IP to the appliances whose BGP sessions learned a covering prefix.

Each appliance reports the prefixes its ISP's router announced to it (see `oca/reporter.py`). The table
maps every prefix to the appliances that reported it; a lookup returns the covering prefixes from the most
specific to the least specific, each with its appliances, so ranking can prefer the appliance whose ISP
announced the narrowest route (RFC 1812 §5.2.4.3: the longest match is the most specific route).

pytricia (a C Patricia trie) holds IPv4 and IPv6 in two tables: 1,000,000 IPv4 /24s build in ~0.9 s and
take ~240 MiB with tuple values; a lookup is ~0.3 µs while the trie is in the CPU caches. At fleet scale
it is not: a lookup walks ~20 nodes scattered over the heap and took 2.1 µs. So a large IPv4 table also
gets a flat index of the 2^24 /24 blocks (64 MiB of int32): the most specific prefix of /24 or shorter
covering each block, one array read instead of the walk; blocks that hold a longer prefix still ask the trie.
"""

from __future__ import annotations

import socket
from array import array
from collections.abc import Iterable
from dataclasses import dataclass

import pytricia


class InvalidAddress(ValueError):
    """The string is not an IPv4 or IPv6 address."""

    def __init__(self, value: str) -> None:
        super().__init__(f"not an IP address: {value!r}")
        self.value = value


@dataclass(frozen=True, slots=True, eq=False)
class Match:
    """One covering prefix, the appliances (model indices) that reported it, and the next less specific
    prefix in the table (linked at build time, so a lookup is one trie search plus pointer hops)."""

    prefix: str
    appliances: tuple[int, ...]
    parent: Match | None = None


def normalize_ip(text: str) -> tuple[str, int]:
    """Return (address, family bits 32|128); IPv4-mapped IPv6 (``::ffff:a.b.c.d``) becomes IPv4.

    Raises InvalidAddress. `socket.inet_pton` checks the syntax in C (~0.2 µs), which keeps the hot path
    cheap; `ipaddress` is only used for the rare IPv6 form that needs rewriting.
    """
    if ":" not in text:
        try:
            socket.inet_pton(socket.AF_INET, text)
        except (OSError, ValueError):
            raise InvalidAddress(text) from None
        return text, 32
    try:
        packed = socket.inet_pton(socket.AF_INET6, text)
    except (OSError, ValueError):
        raise InvalidAddress(text) from None
    # RFC 4291 §2.5.5.2: ::ffff:0:0/96 carries an IPv4 address; BGP tables and GeoIP hold it as IPv4.
    if packed[:12] == b"\x00" * 10 + b"\xff\xff":
        return socket.inet_ntop(socket.AF_INET, packed[12:]), 32
    return text, 128


def parse_prefix(text: str) -> tuple[str, int]:
    """Return (canonical prefix, family bits 32|128) or raise ValueError (bad syntax, host bits set).

    Written with `inet_pton` rather than `ipaddress.ip_network` because a snapshot carries a million
    prefixes: this costs ~1 µs each, `ip_network` ~4 µs.
    """
    if not isinstance(text, str):
        raise ValueError(f"prefix must be a string, got {type(text).__name__}")
    address, sep, length = text.partition("/")
    if not sep or not length.isascii() or not length.isdigit() or len(length) > 3:
        raise ValueError(f"not a prefix (ADDRESS/LENGTH): {text!r}")
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    try:
        packed = socket.inet_pton(family, address)
    except (OSError, ValueError):
        raise ValueError(f"not a prefix (bad address): {text!r}") from None
    bits, n = len(packed) * 8, int(length)
    if n > bits:
        raise ValueError(f"prefix length {n} is longer than {bits}: {text!r}")
    if int.from_bytes(packed, "big") & ((1 << (bits - n)) - 1):
        raise ValueError(f"prefix has host bits set: {text!r}")
    return f"{socket.inet_ntop(family, packed)}/{n}", bits


FLAT_MIN_V4 = 65_536     # IPv4 prefixes from which the flat /24 index pays for its 64 MiB
_TRIE = -1                # a block with a prefix longer than /24 in it: the trie answers


class PrefixTable:
    """Immutable once built: prefix → appliance indices, for IPv4 and IPv6."""

    def __init__(self) -> None:
        self._v4 = pytricia.PyTricia(32)
        self._v6 = pytricia.PyTricia(128)
        self.counts = {"ipv4": 0, "ipv6": 0}
        # The flat index (large tables only): /24 block → position in _block_matches (0: no prefix
        # covers the block, _TRIE: ask the trie).
        self._blocks: array | None = None
        self._block_matches: list[Match | None] = [None]

    @classmethod
    def build(cls, reports: Iterable[tuple[int, Iterable[str], Iterable[str]]], *,
              flat_min: int = FLAT_MIN_V4) -> PrefixTable:
        """Build from (appliance index, IPv4 prefixes, IPv6 prefixes). Raises ValueError on a bad prefix.

        Prefixes must be canonical (no host bits); the fleet model validates them before calling this.
        With `flat_min` IPv4 prefixes or more, IPv4 lookups also get the flat /24 index.
        """
        table = cls()
        pending: dict[str, list[int]] = {}
        for index, v4, v6 in reports:
            for prefix in v4:
                pending.setdefault(prefix, []).append(index)
            for prefix in v6:
                pending.setdefault(prefix, []).append(index)
        # Shortest prefixes first: when a prefix goes in, its covering prefixes are already there and the
        # trie's longest match for it is its parent.
        by_length: dict[int, list[str]] = {}
        for prefix in pending:
            by_length.setdefault(int(prefix[prefix.index("/") + 1:]), []).append(prefix)
        # One tuple object per distinct set of owners: decisions cache rankings by these owner sets.
        owner_sets: dict[tuple[int, ...], tuple[int, ...]] = {}
        v4: list[Match] = []
        for length in sorted(by_length):
            for prefix in by_length[length]:
                tree = table._v6 if ":" in prefix else table._v4
                owners = tuple(pending[prefix])
                match = Match(prefix, owner_sets.setdefault(owners, owners), tree.get(prefix))
                tree.insert(prefix, match)
                if tree is table._v4:
                    v4.append(match)
        table.counts = {"ipv4": len(table._v4), "ipv6": len(table._v6)}
        if len(v4) >= flat_min:
            table._flatten_v4(v4)
        return table

    def _flatten_v4(self, shortest_first: list[Match]) -> None:
        """Paint each prefix's /24 blocks with it, shortest first, so the most specific one stays."""
        blocks = array("i", bytes(4 << 24))
        matches = self._block_matches
        for match in shortest_first:
            address, length = match.prefix.split("/")
            first = int.from_bytes(socket.inet_pton(socket.AF_INET, address), "big") >> 8
            if int(length) > 24:
                blocks[first] = _TRIE
                continue
            matches.append(match)
            count = 1 << (24 - int(length))
            if count == 1:
                blocks[first] = len(matches) - 1
            else:
                blocks[first:first + count] = array("i", [len(matches) - 1]) * count
        self._blocks = blocks

    def __len__(self) -> int:
        return self.counts["ipv4"] + self.counts["ipv6"]

    def flat_index(self) -> tuple[array | None, list[Match | None]]:
        """The flat /24 index (None for small tables) and its matches, for steering/_answer.c: a slot is 0
        (no prefix covers the block), -1 (ask `lookup`) or the position of the block's match."""
        return self._blocks, self._block_matches

    def lookup(self, address: str, bits: int) -> tuple[Match, ...]:
        """Covering prefixes of a normalized address, most specific first (empty when none covers it)."""
        slot = _TRIE
        if bits == 32 and self._blocks is not None:
            slot = self._blocks[int.from_bytes(socket.inet_pton(socket.AF_INET, address), "big") >> 8]
        match = (self._v4 if bits == 32 else self._v6).get(address) if slot == _TRIE else self._block_matches[slot]
        if match is None:
            return ()
        if match.parent is None:
            return (match,)
        matches = []
        while match is not None:
            matches.append(match)
            match = match.parent
        return tuple(matches)
