"""oca.tokens: signing, verification outcomes, key rotation, the key-ring file."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs

import pytest
from hypothesis import given
from hypothesis import strategies as st

from oca import tokens
from oca.config import ConfigError
from oca.tokens import (
    BadSignature,
    ClientMismatch,
    Expired,
    Key,
    KeyRing,
    Malformed,
    Missing,
    Ok,
    RetiredKey,
    UnknownKey,
    VerifiedTokens,
    sign_query,
    verify,
)

S1, S2, OLD = "s1" * 20, "s2" * 20, "old" * 12
RING = KeyRing([Key("k1", S1.encode()), Key("k2", S2.encode()), Key("old", OLD.encode(), retired=True)])
NOW = 1_800_000_000
PATH = "/t1/avc-720p.mp4"


def q(**kw: object) -> str:
    return sign_query(PATH, kw.pop("kid", "k1"), kw.pop("secret", S1), kw.pop("exp", NOW + 60),  # type: ignore[arg-type]
                      kw.pop("cp", None))  # type: ignore[arg-type]


def test_contract_string_and_query_shape() -> None:
    query = sign_query(PATH, "k1", S1, 1_900_000_000, "203.0.113.0/24")
    params = {k: v[0] for k, v in parse_qs(query).items()}
    assert params["exp"] == "1900000000" and params["kid"] == "k1" and params["cp"] == "203.0.113.0/24"
    import hashlib
    import hmac
    expected = hmac.new(S1.encode(), f"{PATH}\n1900000000\nk1\n203.0.113.0/24".encode(), hashlib.sha256).hexdigest()
    assert params["sig"] == expected
    assert query.startswith("exp=1900000000&kid=k1&cp=203.0.113.0%2F24&sig=")


def test_bytes_and_str_secrets_sign_the_same() -> None:
    assert sign_query(PATH, "k1", S1, NOW) == sign_query(PATH, "k1", S1.encode(), NOW)


OUTCOMES = [
    (q(), None, Ok("k1")),
    (q(kid="k2", secret=S2), None, Ok("k2")),                   # several active keys
    (q(kid="old", secret=OLD), None, RetiredKey("old")),         # retired keys rejected
    (q(kid="nope"), None, UnknownKey("nope")),
    (q(secret=S2), None, BadSignature("k1")),                    # signed with another key's secret
    (q(exp=NOW - 1), None, Expired("k1")),
    (q(exp=NOW), None, Ok("k1")),                                # valid through its expiry second
    ("", None, Missing()),
    ("foo=bar", None, Missing()),
    ("exp=1&kid=k1", None, Malformed("exp, kid and sig are all required")),
    (q().replace("exp=", "exp=x"), None, Malformed("exp is not a Unix time")),
    (q() + "&exp=1", None, Malformed("duplicate exp")),
    (q()[:-1], None, Malformed("sig is not 64 lowercase hex digits")),
    (q().upper().replace("EXP", "exp").replace("KID", "kid").replace("SIG", "sig").replace("K1", "k1"), None,
     Malformed("sig is not 64 lowercase hex digits")),
    (q(cp="203.0.113.0/24"), "203.0.113.9", Ok("k1")),
    (q(cp="203.0.113.0/24"), "::ffff:203.0.113.9", Ok("k1")),   # IPv4-mapped client
    (q(cp="203.0.113.0/24"), "198.51.100.1", ClientMismatch("k1")),
    (q(cp="203.0.113.0/24"), None, ClientMismatch("k1")),
    (q(cp="2001:db8:1::/48"), "2001:db8:1::5", Ok("k1")),
    (q(cp="2001:db8:1::/48"), "2001:db8:2::5", ClientMismatch("k1")),
    (q() + "&player=dash", None, Ok("k1")),                      # other parameters are left alone
]


@pytest.mark.parametrize(("query", "client", "expected"), OUTCOMES)
def test_verify_outcomes(query: str, client: str | None, expected: object) -> None:
    assert verify(RING, PATH, query, NOW, client) == expected


def test_signature_covers_path_and_prefix() -> None:
    assert verify(RING, "/t1/other.mp4", q(), NOW) == BadSignature("k1")
    tampered = q(cp="203.0.113.0/24").replace("cp=203.0.113.0%2F24", "cp=0.0.0.0%2F0")
    assert verify(RING, PATH, tampered, NOW, "198.51.100.1") == BadSignature("k1")


def test_every_failure_has_a_reason_for_metrics() -> None:
    reasons = {o.reason for _, _, o in OUTCOMES if not isinstance(o, Ok)}
    assert reasons <= set(tokens.FAILURE_REASONS)


def test_verified_cache_rechecks_expiry_and_prefix() -> None:
    cache = VerifiedTokens(RING)
    query = q(exp=NOW + 10, cp="203.0.113.0/24")
    assert cache.check(PATH, query, NOW, "203.0.113.1") == Ok("k1")
    assert cache.check(PATH, query, NOW, "203.0.113.1") == Ok("k1")          # from the cache
    assert cache.check(PATH, query, NOW, "198.51.100.1") == ClientMismatch("k1")
    assert cache.check(PATH, query, NOW + 11, "203.0.113.1") == Expired("k1")
    assert cache.check(PATH, q(secret=S2), NOW, None) == BadSignature("k1")  # failures are not cached


def test_verified_cache_is_bounded() -> None:
    cache = VerifiedTokens(RING, max_entries=3)
    for n in range(10):
        assert cache.check(f"/k{n}", sign_query(f"/k{n}", "k1", S1, NOW + 5), NOW, None) == Ok("k1")
    assert len(cache._ok) <= 3


@given(path=st.from_regex(r"/[A-Za-z0-9._/-]{1,40}", fullmatch=True), exp=st.integers(0, 10**11),
       kid=st.sampled_from(["k1", "k2"]), mutate=st.integers(0, 63))
def test_any_signed_url_verifies_and_any_flipped_sig_fails(path: str, exp: int, kid: str, mutate: int) -> None:
    secret = S1 if kid == "k1" else S2
    query = sign_query(path, kid, secret, exp)
    assert verify(RING, path, query, exp) == Ok(kid)
    sig = query[-64:]
    flipped = sig[:mutate] + ("0" if sig[mutate] != "0" else "1") + sig[mutate + 1:]
    assert verify(RING, path, query[:-64] + flipped, exp) == BadSignature(kid)


@given(st.text(max_size=200))
def test_arbitrary_queries_never_raise(query: str) -> None:
    verify(RING, PATH, query, NOW, "203.0.113.1")


def test_sign_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        sign_query("no-slash", "k1", S1, NOW)
    with pytest.raises(ValueError):
        sign_query(PATH, "bad id!", S1, NOW)


# -- key-ring file --------------------------------------------------------------------------------
def write(tmp_path: Path, text: str) -> str:
    p = tmp_path / "keys.toml"
    p.write_text(text)
    return str(p)


def test_key_ring_file(tmp_path: Path) -> None:
    ring = tokens.load_key_ring(write(tmp_path, f"""
[[keys]]
id = "a"
secret = "{S1}"
[[keys]]
id = "b"
secret = "{S2}"
state = "retired"
"""))
    assert [k.id for k in ring.active()] == ["a"]
    assert ring.get("b").retired and ring.get("a").secret == S1.encode()


@pytest.mark.parametrize(("text", "where"), [
    ('[[keys]]\nid = "a"\nsecret = "short"\n', "keys[0].secret"),
    (f'[[keys]]\nid = "a b"\nsecret = "{S1}"\n', "keys[0].id"),
    (f'[[keys]]\nid = "a"\nsecret = "{S1}"\n[[keys]]\nid = "a"\nsecret = "{S2}"\n', "keys[1].id"),
    (f'[[keys]]\nid = "a"\nsecret = "{S1}"\nstate = "old"\n', "keys[0].state"),
    (f'[[keys]]\nid = "a"\nsecret = "{S1}"\ncolour = "red"\n', "keys[0].colour"),
    (f'[[keys]]\nid = "a"\nsecret = "{S1}"\nstate = "retired"\n', "keys"),
    ("", "keys"),
])
def test_key_ring_errors_name_the_key(tmp_path: Path, text: str, where: str) -> None:
    with pytest.raises(ConfigError) as e:
        tokens.load_key_ring(write(tmp_path, text))
    assert e.value.key == where
