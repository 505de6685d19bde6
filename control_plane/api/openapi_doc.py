"""The OpenAPI 3.1 document, assembled from every route module's ``OPENAPI`` paths.

Route modules describe their operations with `op(...)`; shared schemas live in `COMPONENTS`
(modules may add their own under ``OPENAPI_COMPONENTS``).
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

ERROR = {"$ref": "#/components/schemas/Error"}
_ERROR_TEXT = {400: "Bad JSON or query", 401: "Missing token", 403: "Token not allowed", 404: "Unknown id",
               409: "Conflict", 413: "Body too large", 415: "Not JSON", 422: "Invalid field",
               503: "Backlog full (Retry-After)"}


def ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def op(summary: str, *, auth: str | None, body: dict | None = None, ok: int = 200, ok_schema: dict | None = None,
       errors: tuple[int, ...] = (), params: tuple[dict, ...] = (), etag: bool = False,
       ok_content: str = "application/json") -> dict:
    """One operation. `auth`: "operator", "reader" (operator or service), "appliance" or None."""
    responses: dict[str, Any] = {str(ok): {"description": "OK"}}
    if ok_schema is not None:
        responses[str(ok)]["content"] = {ok_content: {"schema": ok_schema}}
    if etag:
        responses[str(ok)]["headers"] = {"ETag": {"schema": {"type": "string"}}}
        responses["304"] = {"description": "Not modified (If-None-Match matched)"}
    codes = set(errors)
    if auth:
        codes |= {401, 403}
    if body is not None:
        codes |= {400, 413, 415, 422}
    for code in sorted(codes):
        responses[str(code)] = {"description": _ERROR_TEXT.get(code, "Error"),
                                "content": {"application/json": {"schema": ERROR}}}
    out: dict[str, Any] = {"summary": summary, "responses": responses}
    if auth:
        out["security"] = [{"bearer": []}]
        out["x-oca-auth"] = auth
    if body is not None:
        out["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    if params:
        out["parameters"] = list(params)
    return out


def path_param(name: str, description: str = "") -> dict:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}, "description": description}


def query_param(name: str, schema: dict, description: str = "") -> dict:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


_STR = {"type": "string"}
_INT = {"type": "integer"}
_NULLABLE_STR = {"type": ["string", "null"]}
_NULLABLE_INT = {"type": ["integer", "null"]}
_TIME = {"type": "string", "format": "date-time"}

COMPONENTS: dict[str, Any] = {
    "Error": {"type": "object", "required": ["error"], "properties": {"error": {
        "type": "object", "required": ["code", "message", "field"],
        "properties": {"code": _STR, "message": _STR, "field": _NULLABLE_STR}}}},
    "Title": {"type": "object", "required": ["id", "type", "name", "language"], "properties": {
        "id": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"},
        "type": {"enum": ["movie", "series", "episode", "documentary", "special", "trailer"]},
        "name": _STR, "language": _STR, "year": _NULLABLE_INT, "maturity_rating": _NULLABLE_STR,
        "duration_s": _NULLABLE_INT, "synopsis": _NULLABLE_STR}},
    "Rendition": {"type": "object", "required": ["key", "kind", "codec"], "properties": {
        "key": {"type": "string", "description": "content key, e.g. t1/avc-720p.mp4"},
        "title_id": _STR, "kind": {"enum": ["video", "audio", "subtitle"]}, "codec": _STR,
        "status": {"enum": ["encoding", "ready", "failed"]}, "width": _NULLABLE_INT, "height": _NULLABLE_INT,
        "bitrate_bps": _NULLABLE_INT, "language": _NULLABLE_STR, "size": _NULLABLE_INT,
        "sha256": {"type": ["string", "null"], "pattern": "^[0-9a-f]{64}$"}}},
    "Licence": {"type": "object", "required": ["region", "start"], "properties": {
        "region": {"type": "string", "pattern": "^[A-Z]{2}$"}, "start": _TIME,
        "end": {"type": ["string", "null"], "format": "date-time"}, "exclusive": {"type": "boolean"}}},
    "Appliance": {"type": "object",
                  "required": ["id", "kind", "site", "region", "country", "asn", "base_url", "link_capacity_bps"],
                  "properties": {
                      "id": _STR, "kind": {"enum": ["embedded", "ixp", "origin"]}, "site": _STR, "region": _STR,
                      "country": {"type": "string", "pattern": "^[A-Z]{2}$"}, "asn": _INT, "base_url": _STR,
                      "capacity": {"type": "object", "properties": {"ssd": _INT, "hdd": _INT}},
                      "link_capacity_bps": _INT}},
    "ApplianceReport": {"type": "object", "required": ["version", "appliance_id", "sent_at", "health", "load"],
                        "description": "docs/contracts.md, Appliance report",
                        "properties": {"version": {"const": 1}, "appliance_id": _STR, "sent_at": _TIME,
                                       "health": {"type": "object"}, "load": {"type": "object"},
                                       "inventory": {"type": "object"}, "prefixes": {"type": "object"}}},
    "FleetSnapshot": {"type": "object", "description": "docs/contracts.md, Fleet snapshot",
                      "required": ["version", "generation", "appliances", "titles"]},
    "FillManifest": {"type": "object", "description": "docs/contracts.md, Fill manifest",
                     "required": ["version", "appliance_id", "generation", "items"]},
    "Heartbeat": {"type": "object", "required": ["positionMs", "bufferHealth", "bitrate", "deviceId"],
                  "properties": {"positionMs": _INT, "bufferHealth": {"type": "number"}, "bitrate": _INT,
                                 "deviceId": _STR}},
    "PlaybackEvent": {"type": "object", "required": ["type", "positionMs"],
                      "properties": {"type": {"enum": ["play", "pause", "seek", "stop"]}, "positionMs": _INT}},
}


def build(modules: list[ModuleType]) -> dict:
    paths: dict[str, Any] = {}
    components = dict(COMPONENTS)
    for module in modules:
        for path, ops in getattr(module, "OPENAPI", {}).items():
            paths.setdefault(path, {}).update(ops)
        components.update(getattr(module, "OPENAPI_COMPONENTS", {}))
    return {
        "openapi": "3.1.0",
        "info": {"title": "OCA stack control plane", "version": "1",
                 "description": "Catalog, licences, fleet, telemetry, popularity and fill manifests. "
                                "Errors are {\"error\": {\"code\", \"message\", \"field\"}}."},
        "servers": [{"url": "/"}],
        "paths": dict(sorted(paths.items())),
        "components": {"schemas": components,
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    }
