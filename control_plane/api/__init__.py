"""HTTP routes, one module per resource. THE registration point for every part of the control plane.

A route module is any module in this package that defines

    def register(app: aiohttp.web.Application) -> None     # add its routes: app.router.add_get(...)
    OPENAPI: dict                                           # {"/api/v1/...": {"get": {...}}, ...}

and optionally ``async def on_startup(app)`` / ``async def on_cleanup(app)``, and
``CONFIG_SECTIONS = {"ingest": read_ingest}``: TOML sections this module owns, each read by a
function ``(oca.config.Section) -> value`` that validates and calls ``done()``; the value is
``config.extensions["ingest"]``, also ``config.ingest``. `create_app` calls
every module's `register` (sorted by module name), so another part adds routes by adding a file
here (``api/ingest.py``, ``api/playback_manifest.py``) — no edit to app.py. Handlers get shared
state from ``request.app[CONTEXT]`` (control_plane/context.py), authenticate with `api.auth`,
read bodies with `api.bodies.read_json` (size limit, 413/415/400) and raise
`control_plane.errors.ApiError` for every client error; the middleware renders it as
``{"error": {"code", "message", "field"}}``. A test checks every route appears in OPENAPI.
"""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType

# Modules here that are helpers, not resources.
_HELPERS = {"auth", "bodies", "conditional", "middleware", "openapi_doc"}


def route_modules() -> list[ModuleType]:
    modules = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        if info.name in _HELPERS or info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        if callable(getattr(module, "register", None)):
            modules.append(module)
    return modules
