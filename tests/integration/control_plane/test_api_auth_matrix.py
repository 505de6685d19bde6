"""Every authenticated route of the control plane's own modules: no token → 401, a wrong token → 403,
and every write route refuses an oversize body with 413 — driven by the OpenAPI document so a new
route cannot skip the checks."""

from __future__ import annotations

import re

from control_plane.api import appliances, fill_manifest, fleet, licenses, popularity, system, telemetry, titles
from tests.integration.control_plane.conftest import OPERATOR_TOKEN

MODULES = (appliances, fill_manifest, fleet, licenses, popularity, system, telemetry, titles)
DUMMY = {"title_id": "t1", "appliance_id": "isp1-a", "region": "DE", "key": "t1/a.mp4"}


def operations(auth_only: bool):
    for module in MODULES:
        for path, ops in module.OPENAPI.items():
            for method, op in ops.items():
                if auth_only and not op.get("x-oca-auth"):
                    continue
                yield method.upper(), re.sub(r"\{(\w+)\}", lambda m: DUMMY[m.group(1)], path), op


async def test_every_authenticated_route_needs_a_token(control):
    checked = 0
    for method, path, op in operations(auth_only=True):
        body = {} if "requestBody" in op else None
        status, err, headers = await control.call(method, path, body, token=None)
        assert status == 401, (method, path, status)
        assert err["error"]["code"] == "unauthenticated" and "WWW-Authenticate" in headers
        status, err, _ = await control.call(method, path, body, token="not-a-token")
        assert status == 403, (method, path, status)
        checked += 1
    assert checked >= 25


async def test_every_write_route_limits_its_body(control):
    await control.call("POST", "/api/v1/titles", {"id": "t1", "type": "movie", "name": "x", "language": "en"})
    big = {"pad": "x" * (1024 * 1024 + 10)}
    checked = 0
    for method, path, op in operations(auth_only=False):
        if "requestBody" not in op or path.endswith("/report"):
            continue        # the report's limit is fleet.max_report_size (64 MiB): tested on its own
        token = OPERATOR_TOKEN if op.get("x-oca-auth") else None
        status, err, _ = await control.call(method, path, big, token=token)
        assert status == 413 and err["error"]["code"] == "body_too_large", (method, path, status)
        checked += 1
    assert checked >= 10
