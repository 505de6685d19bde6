"""Bearer tokens: generation, hashing, and the operator token set.

Tokens are 256-bit random strings (`secrets.token_urlsafe(32)`), so a fast hash is enough to
store them safely: SHA-256 of the token, hex. The clear token is shown once (registration,
rotation, `oca-control token create`) and never stored by the server; operator token files hold
the clear token for the operator's tools and are hashed when read.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Iterable, Mapping
from pathlib import Path

from control_plane.errors import ApiError

ROLES = ("operator", "service")   # service: read-only fleet snapshot (steering)


def new_token() -> str:
    return secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def bearer(headers: Mapping[str, str]) -> str | None:
    """The token of ``Authorization: Bearer <token>`` (RFC 6750 §2.1), else None."""
    value = headers.get("Authorization")
    if not value:
        return None
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def missing_token() -> ApiError:
    # RFC 6750 §3: a 401 carries WWW-Authenticate.
    return ApiError(401, "unauthenticated", "missing or malformed Authorization: Bearer token",
                    headers={"WWW-Authenticate": 'Bearer realm="oca-control"'})


def forbidden(message: str = "this token may not do that") -> ApiError:
    return ApiError(403, "forbidden", message)


def read_token_file(path: Path) -> str:
    token = path.read_text().strip()
    if not token or any(c.isspace() for c in token):
        raise ValueError(f"{path}: expected one token on one line")
    return token


def load_operator_hashes(paths: Iterable[Path]) -> frozenset[str]:
    """SHA-256 of each token file's token; unreadable files raise OSError/ValueError."""
    return frozenset(hash_token(read_token_file(p)) for p in paths)


def ensure_token_file(path: Path, env_token: str | None) -> tuple[str, bool]:
    """For the embedded defaults: write `env_token` (or a new token) to `path` unless it holds one.
    Returns (token, created). The file is created 0600."""
    if env_token:
        token, created = env_token.strip(), False
        _write_private(path, token)
        return token, created
    if path.exists():
        return read_token_file(path), False
    token = new_token()
    _write_private(path, token)
    return token, True


def _write_private(path: Path, token: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
