"""Who is calling: operator tokens (files or api_tokens rows), service tokens, appliance tokens.

401 when there is no usable ``Authorization: Bearer`` header, 403 when the token is not allowed.
"""

from __future__ import annotations

import hmac

from aiohttp import web

from control_plane import credentials
from control_plane.context import CONTEXT
from control_plane.db import fleet as fleet_repo
from control_plane.db import tokens as tokens_repo
from control_plane.errors import not_found


async def role(request: web.Request) -> str | None:
    """"operator", "service" or None (unknown token); 401 when no token was sent."""
    token = credentials.bearer(request.headers)
    if token is None:
        raise credentials.missing_token()
    ctx = request.app[CONTEXT]
    digest = credentials.hash_token(token)
    if digest in ctx.operator_hashes:
        return "operator"
    async with ctx.engine.connect() as conn:
        return await tokens_repo.role_for_hash(conn, digest)


async def require_operator(request: web.Request) -> None:
    if await role(request) != "operator":
        raise credentials.forbidden("an operator token is required")


async def require_reader(request: web.Request) -> None:
    """Operator or service token (steering reads the fleet snapshot with a service token)."""
    if await role(request) not in ("operator", "service"):
        raise credentials.forbidden("an operator or service token is required")


async def require_appliance(request: web.Request, appliance_id: str, *, allow_operator: bool) -> None:
    """The token of appliance `appliance_id` (or, if allowed, an operator token). An unknown
    appliance is a 404 only for callers that proved to be the operator; others get 403, so the
    API does not reveal which ids exist."""
    token = credentials.bearer(request.headers)
    if token is None:
        raise credentials.missing_token()
    ctx = request.app[CONTEXT]
    digest = credentials.hash_token(token)
    async with ctx.engine.connect() as conn:
        stored = await fleet_repo.token_hash(conn, appliance_id)
        if stored is not None and hmac.compare_digest(stored, digest):
            return
        is_operator = digest in ctx.operator_hashes or (
            await tokens_repo.role_for_hash(conn, digest)) == "operator"
    if is_operator and stored is None:
        raise not_found("appliance", appliance_id)
    if allow_operator and is_operator:
        return
    raise credentials.forbidden(f"this token is not appliance {appliance_id!r}'s token")
