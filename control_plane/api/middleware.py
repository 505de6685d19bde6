"""The one middleware: JSON errors for everything, and per-route metrics.

`ApiError` → its status and body; aiohttp's own HTTP errors (404 no route, 405, 413 from
client_max_size) → the same JSON shape; anything else → 500 with a generic message, the stack
trace only in the log.
"""

from __future__ import annotations

import logging
import time

from aiohttp import web

from control_plane.api.bodies import json_response
from control_plane.context import CONTEXT
from control_plane.errors import ApiError

log = logging.getLogger("oca.control.http")

_HTTP_CODES = {400: "bad_request", 401: "unauthenticated", 403: "forbidden", 404: "not_found",
               405: "method_not_allowed", 413: "body_too_large", 415: "unsupported_media_type"}


def _route_name(request: web.Request) -> str:
    info = request.match_info.route.resource
    return info.canonical if info is not None else "(unmatched)"


@web.middleware
async def errors_and_metrics(request: web.Request, handler) -> web.StreamResponse:
    started = time.perf_counter()
    try:
        response = await handler(request)
    except ApiError as e:
        response = json_response(e.body(), e.status, e.headers)
    except web.HTTPException as e:
        if e.status < 400:
            raise
        code = _HTTP_CODES.get(e.status, "http_error")
        headers = {k: v for k, v in e.headers.items() if k in ("Allow", "Retry-After", "WWW-Authenticate")}
        response = json_response({"error": {"code": code, "message": e.reason, "field": None}}, e.status,
                                 headers)
    except Exception:
        log.exception("unhandled error", extra={"fields": {"method": request.method, "path": request.path}})
        response = json_response({"error": {"code": "internal", "message": "internal server error",
                                            "field": None}}, 500)
    count, observe = request.app[CONTEXT].metrics.response_children(_route_name(request), request.method,
                                                                     response.status)
    count()
    observe(time.perf_counter() - started)
    return response

