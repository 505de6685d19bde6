"""ETag / If-None-Match for the versioned documents (RFC 9110 §8.8.3, §13.1.2)."""

from __future__ import annotations

from aiohttp import web


def etag(value: str) -> str:
    return f'"{value}"'


def not_modified(request: web.Request, tag: str) -> bool:
    """True when If-None-Match matches `tag` (weak comparison, as §13.1.2 requires for GET)."""
    header = request.headers.get("If-None-Match")
    if not header:
        return False
    if header.strip() == "*":
        return True
    for candidate in header.split(","):
        candidate = candidate.strip()
        if candidate.startswith("W/"):
            candidate = candidate[2:]
        if candidate == tag:
            return True
    return False


def response_304(tag: str) -> web.Response:
    return web.Response(status=304, headers={"ETag": tag})
