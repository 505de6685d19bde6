"""Reading JSON bodies with a size limit, and writing JSON responses (orjson: the fill manifest is
~25 MB of JSON at full scale, and heartbeats are parsed on the hot path)."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from control_plane.errors import ApiError


def _too_large(limit: int) -> ApiError:
    return ApiError(413, "body_too_large", f"the request body exceeds {limit} bytes")


async def read_json(request: web.Request, limit: int) -> Any:
    """The parsed body. 415 unless Content-Type is JSON; 413 over `limit` bytes (checked against
    Content-Length before reading, and while reading a chunked body); 400 when it is not JSON."""
    ctype = request.content_type
    if ctype != "application/json" and not ctype.endswith("+json"):
        raise ApiError(415, "unsupported_media_type", "send the body as application/json")
    if request.content_length is not None:
        if request.content_length > limit:
            raise _too_large(limit)
        data = await request.read()
    else:
        chunks, size = [], 0
        async for chunk in request.content.iter_any():
            size += len(chunk)
            if size > limit:
                raise _too_large(limit)
            chunks.append(chunk)
        data = b"".join(chunks)
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as e:
        raise ApiError(400, "bad_json", f"the body is not valid JSON: {e}") from None


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status,
                        content_type="application/json", headers=headers)


def query_int(request: web.Request, name: str, default: int, lo: int, hi: int) -> int:
    text = request.query.get(name)
    if text is None:
        return default
    if not text.isdigit() or not lo <= int(text) <= hi:
        raise ApiError(400, "bad_query", f"{name} must be an integer in [{lo}, {hi}]", name)
    return int(text)
