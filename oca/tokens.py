"""Signed URLs: sign (the control plane imports this) and verify (the edge, on every request).

Token format (docs/contracts.md "URL token"): query parameters ``exp`` (expiry, Unix seconds),
``kid`` (key id), optional ``cp`` (client prefix such as ``203.0.113.0/24`` or ``2001:db8:1::/48``)
and ``sig``: lowercase hex HMAC-SHA256 over ``"{path}\\n{exp}\\n{kid}\\n{cp or ''}"`` where `path` is
the URL path starting with ``/``. The edge verifies against ``"/" + content key`` — the path after
its single percent-decoding — which is byte-for-byte the path a signer builds from a key (keys only
use characters that never need encoding), and stays valid if a client over-encodes a character.

Key-ring file (TOML), several ids may be active at once; retired ids are rejected::

    [[keys]]
    id = "2026-11a"                 # [A-Za-z0-9._-]{1,64}, goes in the URL as kid
    secret = "at least 32 characters of random text"   # HMAC key = its UTF-8 bytes
    state = "active"                # active | retired   (default active)

Verification is pure (clock and client address are arguments), constant-time on the signature
(`hmac.compare_digest`) and returns a closed `TokenCheck`; the edge answers 403 to anything but
`Ok` and puts `reason` in the access log and metrics only.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote, unquote

from oca.config import ConfigError, Section, load_toml

MIN_SECRET_CHARS = 32
_KID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_HEX64 = re.compile(r"[0-9a-f]{64}")
TOKEN_PARAMS = ("exp", "kid", "cp", "sig")


@dataclass(frozen=True, slots=True)
class Key:
    id: str
    secret: bytes
    retired: bool = False


class KeyRing:
    """Key id → `Key`. Built whole and swapped in one assignment by the caller on reload."""

    def __init__(self, keys: list[Key] | tuple[Key, ...] = ()) -> None:
        self._keys: dict[str, Key] = {}
        for k in keys:
            if k.id in self._keys:
                raise ValueError(f"duplicate key id {k.id!r}")
            self._keys[k.id] = k

    def get(self, key_id: str) -> Key | None:
        return self._keys.get(key_id)

    def active(self) -> list[Key]:
        return [k for k in self._keys.values() if not k.retired]

    def __len__(self) -> int:
        return len(self._keys)


# -- outcomes -----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Ok:
    kid: str
    reason = "ok"


@dataclass(frozen=True, slots=True)
class Missing:
    kid = None
    reason = "missing"


@dataclass(frozen=True, slots=True)
class Malformed:
    detail: str
    kid = None
    reason = "malformed"


@dataclass(frozen=True, slots=True)
class Expired:
    kid: str
    reason = "expired"


@dataclass(frozen=True, slots=True)
class UnknownKey:
    kid: str
    reason = "unknown_key"


@dataclass(frozen=True, slots=True)
class RetiredKey:
    kid: str
    reason = "retired_key"


@dataclass(frozen=True, slots=True)
class BadSignature:
    kid: str
    reason = "bad_signature"


@dataclass(frozen=True, slots=True)
class ClientMismatch:
    kid: str
    reason = "client_mismatch"


TokenCheck = Ok | Missing | Malformed | Expired | UnknownKey | RetiredKey | BadSignature | ClientMismatch
FAILURE_REASONS = ("missing", "malformed", "expired", "unknown_key", "retired_key", "bad_signature",
                   "client_mismatch")


# -- signing ------------------------------------------------------------------------------------
def _as_bytes(secret: bytes | str) -> bytes:
    return secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)


def signature(path: str, key_id: str, secret: bytes | str, expires: int, client_prefix: str | None) -> str:
    """Lowercase hex HMAC-SHA256 over ``path\\nexp\\nkid\\ncp``."""
    message = f"{path}\n{expires}\n{key_id}\n{client_prefix or ''}".encode()
    return hmac.digest(_as_bytes(secret), message, hashlib.sha256).hex()


def sign_query(path: str, key_id: str, secret: bytes | str, expires: int,
               client_prefix: str | None = None) -> str:
    """The token query string (without ``?``) for `path` (starting with ``/``), valid until `expires`."""
    if not path.startswith("/"):
        raise ValueError(f"path must start with '/': {path!r}")
    if not _KID.fullmatch(key_id):
        raise ValueError(f"invalid key id {key_id!r}")
    expires = int(expires)
    sig = signature(path, key_id, secret, expires, client_prefix)
    cp = f"&cp={quote(client_prefix, safe='')}" if client_prefix else ""
    return f"exp={expires}&kid={key_id}{cp}&sig={sig}"


# -- verifying ----------------------------------------------------------------------------------
def token_params(query: str) -> dict[str, str] | Malformed:
    """Pick the token parameters out of a raw query string; other parameters are left alone."""
    found: dict[str, str] = {}
    if not query:
        return found
    for pair in query.split("&"):
        name, _, value = pair.partition("=")
        if name in TOKEN_PARAMS:
            if name in found:
                return Malformed(f"duplicate {name}")
            found[name] = unquote(value) if "%" in value else value
    return found


def verify(ring: KeyRing, path: str, query: str | Mapping[str, str], now: float,
           client_ip: str | None = None) -> TokenCheck:
    """Check the token in `query` (raw string or already picked params) for `path` at time `now`."""
    params = token_params(query) if isinstance(query, str) else query
    if isinstance(params, Malformed):
        return params
    if not params:
        return Missing()
    exp, kid, sig, cp = params.get("exp"), params.get("kid"), params.get("sig"), params.get("cp")
    if exp is None or kid is None or sig is None:
        return Malformed("exp, kid and sig are all required")
    if not (exp.isdigit() and exp.isascii() and len(exp) <= 12):
        return Malformed("exp is not a Unix time")
    if not _KID.fullmatch(kid):
        return Malformed("invalid kid")
    if len(sig) != 64 or not _HEX64.fullmatch(sig):
        return Malformed("sig is not 64 lowercase hex digits")
    key = ring.get(kid)
    if key is None:
        return UnknownKey(kid)
    if key.retired:
        return RetiredKey(kid)
    expected = signature(path, kid, key.secret, int(exp), cp)
    if not hmac.compare_digest(expected, sig):
        return BadSignature(kid)
    # Only a genuine token gets told it expired or came from the wrong network.
    if now > int(exp):
        return Expired(kid)
    if cp and (client_ip is None or not _client_in(cp, client_ip)):
        return ClientMismatch(kid)
    return Ok(kid)


def _client_in(prefix: str | ipaddress.IPv4Network | ipaddress.IPv6Network, client_ip: str) -> bool:
    try:
        net = ipaddress.ip_network(prefix, strict=False) if isinstance(prefix, str) else prefix
        ip = ipaddress.ip_address(client_ip)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None and net.version == 4:
        ip = ip.ipv4_mapped  # a dual-stack socket reports IPv4 clients as ::ffff:a.b.c.d
    return ip in net


class VerifiedTokens:
    """`verify` with a memory of URLs whose signature already checked out, for one key ring.

    A player fetches many ranges of the same signed URL; recomputing the HMAC for each costs more
    than the rest of a small range request. Only genuine tokens are remembered (keyed by path and
    the exact query, so a hit needs the exact valid signature); expiry and client prefix are still
    checked on every request. Build a new one when the key ring changes (a retired key must stop
    working at once). Bounded: when full it starts again empty.
    """

    def __init__(self, ring: KeyRing, max_entries: int = 65536) -> None:
        self.ring, self.max_entries = ring, max_entries
        self._ok: dict[tuple[str, str], tuple[Ok, int, object, tuple[bytes, int] | None]] = {}

    @property
    def memory(self) -> dict[tuple[str, str], tuple[Ok, int, object, tuple[bytes, int] | None]]:
        """(path, query) → (Ok, exp, client network or None, (its packed address, prefix length) or
        None): what the edge's compiled path reads."""
        return self._ok

    def check(self, path: str, query: str, now: float, client_ip: str | None) -> TokenCheck:
        hit = self._ok.get((path, query))
        if hit is None:
            result = verify(self.ring, path, query, now, client_ip)
            if isinstance(result, Ok):
                params = token_params(query)
                assert isinstance(params, dict)
                cp = params.get("cp")
                net = ipaddress.ip_network(cp, strict=False) if cp else None
                if len(self._ok) >= self.max_entries:
                    self._ok.clear()
                packed = (net.network_address.packed, net.prefixlen) if net is not None else None
                self._ok[(path, query)] = (result, int(params["exp"]), net, packed)
            return result
        ok, exp, net, _ = hit
        if now > exp:
            return Expired(ok.kid)
        if net is not None and (client_ip is None or not _client_in(net, client_ip)):  # type: ignore[arg-type]
            return ClientMismatch(ok.kid)
        return ok


# -- key-ring file ------------------------------------------------------------------------------
def read_key_ring(root: Section) -> KeyRing:
    """Validate a key-ring document (see module docstring) into a `KeyRing`."""
    keys: list[Key] = []
    seen: set[str] = set()
    for sec in root.sections("keys", required=True):
        kid = sec.str("id")
        if not _KID.fullmatch(kid):
            raise sec.error("id", "expected 1-64 characters of A-Z a-z 0-9 . _ -")
        if kid in seen:
            raise sec.error("id", f"duplicate key id {kid!r}")
        seen.add(kid)
        secret = sec.str("secret")
        if len(secret) < MIN_SECRET_CHARS:
            raise sec.error("secret", f"must be at least {MIN_SECRET_CHARS} characters")
        state = sec.choice("state", ("active", "retired"), "active")
        sec.done()
        keys.append(Key(kid, secret.encode("utf-8"), state == "retired"))
    root.done()
    if not any(not k.retired for k in keys):
        raise ConfigError(root.file, "keys", "at least one key must be active")
    return KeyRing(keys)


def load_key_ring(path: str) -> KeyRing:
    """Read and validate a key-ring file; errors are `ConfigError` naming file and key."""
    return read_key_ring(load_toml(path))
