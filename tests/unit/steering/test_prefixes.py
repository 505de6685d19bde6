import pytest

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
