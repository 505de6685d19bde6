import pytest
from hypothesis import given
from hypothesis import strategies as st

from oca.contentkey import MAX_KEY_BYTES, InvalidKey, is_valid_key, validate_key

VALID = [
    "t1042/avc-720p-3000k.mp4",
    "a",
    "a.b",
    "..a",            # a segment that merely starts with dots is a name, not a parent reference
    "a/..b/c",
    "A-Z_0.9/x",
    "x" * MAX_KEY_BYTES,
]

INVALID = [
    ("", "empty"),
    ("..", "'..' segment"),
    ("a/../b", "'..' segment"),
    ("a/./b", "'.' segment"),
    (".", "'.' segment"),
    ("/etc/passwd", "leading '/'"),
    ("a/", "trailing '/'"),
    ("a//b", "empty path segment"),
    ("%2e%2e/etc", "'%'"),                    # percent-encoding is decoded once by the server, never here
    ("a\x00b", "'\\x00'"),
    ("a\\b", "'\\\\'"),
    ("a b", "' '"),
    ("t1/\u2024\u2024/x", "'\u2024'"),        # ONE DOT LEADER look-alike
    ("t1/\uff0e\uff0e/x", "'\uff0e'"),        # FULLWIDTH FULL STOP
    ("t1/\u2215etc", "'\u2215'"),             # DIVISION SLASH
    ("caf\u00e9.mp4", "'\u00e9'"),
    ("a?b", "'?'"),
    ("x" * (MAX_KEY_BYTES + 1), "longer than 512 bytes"),
]


@pytest.mark.parametrize("key", VALID)
def test_valid_keys(key):
    assert validate_key(key) == key
    assert is_valid_key(key)


@pytest.mark.parametrize(("key", "reason"), INVALID)
def test_invalid_keys_say_why(key, reason):
    with pytest.raises(InvalidKey) as e:
        validate_key(key)
    assert reason in e.value.reason
    assert not is_valid_key(key)


def test_non_string_is_rejected():
    with pytest.raises(InvalidKey):
        validate_key(b"a")  # type: ignore[arg-type]


@given(st.text(max_size=80))
def test_a_valid_key_never_escapes_its_root(s):
    if is_valid_key(s):
        parts = s.split("/")
        assert all(p not in ("", ".", "..") for p in parts)
        assert s.isascii() and "\x00" not in s and not s.startswith("/")
