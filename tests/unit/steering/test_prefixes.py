import socket

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from steering.prefixes import InvalidAddress, PrefixTable, normalize_ip, parse_prefix


@pytest.mark.parametrize("text, expected", [
    ("203.0.113.0/24", ("203.0.113.0/24", 32)),
    ("0.0.0.0/0", ("0.0.0.0/0", 32)),
    ("10.1.2.3/32", ("10.1.2.3/32", 32)),
    ("2001:DB8::/32", ("2001:db8::/32", 128)),
    ("2001:db8:0:0::/48", ("2001:db8::/48", 128)),
    ("::/0", ("::/0", 128)),
])
def test_parse_prefix_canonicalizes(text, expected):
    assert parse_prefix(text) == expected


@pytest.mark.parametrize("text", [
    "203.0.113.1/24", "203.0.113.0/33", "203.0.113.0", "203.0.113/24", "01.2.3.0/24", " 1.2.3.0/24",
    "1.2.3.0/ 24", "1.2.3.0/-1", "2001:db8::1/32", "2001:db8::/129", "x/8", "", "/8", "1.2.3.0/٣",
])
def test_parse_prefix_rejects(text):
    with pytest.raises(ValueError):
        parse_prefix(text)


@pytest.mark.parametrize("text, expected", [
    ("203.0.113.9", ("203.0.113.9", 32)),
    ("2001:db8::9", ("2001:db8::9", 128)),
    ("::ffff:203.0.113.9", ("203.0.113.9", 32)),
    ("::FFFF:cb00:7109", ("203.0.113.9", 32)),
    ("::203.0.113.9", ("::203.0.113.9", 128)),
])
def test_normalize_ip(text, expected):
    assert normalize_ip(text) == expected


@pytest.mark.parametrize("text", ["", "1.2.3", "1.2.3.4.5", "256.1.1.1", "2001:db8::g", "localhost", "1.2.3.4/32"])
def test_normalize_ip_rejects(text):
    with pytest.raises(InvalidAddress):
        normalize_ip(text)


def test_lookup_returns_covering_prefixes_most_specific_first():
    table = PrefixTable.build([
        (0, ["203.0.0.0/16"], ["2001:db8::/32"]),
        (1, ["203.0.113.0/24"], ["2001:db8:1::/48"]),
        (2, ["203.0.113.0/24"], []),
        (3, ["198.51.100.0/24"], []),
    ])
    assert table.counts == {"ipv4": 3, "ipv6": 2}
    matches = table.lookup("203.0.113.9", 32)
    assert [(m.prefix, m.appliances) for m in matches] == [("203.0.113.0/24", (1, 2)), ("203.0.0.0/16", (0,))]
    assert [m.prefix for m in table.lookup("2001:db8:1::5", 128)] == ["2001:db8:1::/48", "2001:db8::/32"]
    assert [m.prefix for m in table.lookup("203.0.9.1", 32)] == ["203.0.0.0/16"]
    assert table.lookup("192.0.2.1", 32) == ()
    assert table.lookup("2001:db9::1", 128) == ()


@st.composite
def v4_tables(draw):
    """Nested IPv4 prefixes of every length around two /16s, and addresses in and next to them."""
    prefixes = set()
    for _ in range(draw(st.integers(1, 25))):
        length = draw(st.sampled_from([8, 12, 16, 20, 23, 24, 25, 28, 31, 32]))
        base = draw(st.sampled_from([0xCB000000, 0xCB00FF00, 0x0A000000]))
        network = (base | draw(st.integers(0, 0xFFFF))) >> (32 - length) << (32 - length)
        prefixes.add(f"{socket.inet_ntoa(network.to_bytes(4, 'big'))}/{length}")
    owners = draw(st.lists(st.integers(0, 3), min_size=len(prefixes), max_size=len(prefixes)))
    reports = [(owner, [prefix], []) for owner, prefix in zip(owners, sorted(prefixes), strict=True)]
    addresses = [socket.inet_ntoa(((base | draw(st.integers(0, 0x1FFFF))) & 0xFFFFFFFF).to_bytes(4, "big"))
                 for base in (0xCB000000, 0x0A000000, 0xCB00FF00) for _ in range(8)]
    return reports, addresses


@settings(max_examples=40, deadline=None)
@given(v4_tables())
def test_the_flat_ipv4_index_answers_like_the_trie(table_and_addresses):
    """Large tables look IPv4 clients up in a flat /24 index (blocks with longer prefixes ask the trie)."""
    reports, addresses = table_and_addresses
    trie_only = PrefixTable.build(reports, flat_min=10**9)
    flat = PrefixTable.build(reports, flat_min=0)
    assert flat._blocks is not None and trie_only._blocks is None
    for address in addresses:
        answers = [[(m.prefix, m.appliances) for m in t.lookup(address, 32)] for t in (flat, trie_only)]
        assert answers[0] == answers[1], address
