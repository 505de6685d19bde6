"""Ingest API (reference design): submit a master, follow its encoding, cancel it.

``POST /api/v1/content/ingest`` {titleId, masterFileUrl, metadata?, subtitles?} → 202 {jobId, statusUrl}
``GET /api/v1/content/{titleId}/encoding-status`` → the latest job, its stage and every output's
state/percent/size/sha256/error. ``POST /api/v1/content/jobs/{jobId}/cancel`` → the job's state.
Jobs are run by `control_plane.ingest_jobs.JobManager`, started with the application.

Settings: ``ctx.config.ingest`` when the config has an ``[ingest]`` section, else
``ctx.extras["ingest_settings"]`` (tests, embedders), else defaults next to the SQLite database
(``<db dir>/content`` is what an origin serves with ``oca serve --root``).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from aiohttp import web

from control_plane.api.auth import require_operator
from control_plane.api.bodies import json_response, read_json
from control_plane.api.openapi_doc import op, path_param
from control_plane.context import CONTEXT, Context
from control_plane.errors import ApiError, not_found
from control_plane.ingest_jobs import IngestSettings, JobManager, default_settings, parse_ingest_section, parse_request
from control_plane.validation import check_identifier
from oca.config import Section

MANAGER = web.AppKey("oca_ingest_manager", JobManager)
_OBJ = {"type": "object"}


def settings_for(ctx: Context) -> IngestSettings:
    configured = getattr(ctx.config, "ingest", None) or ctx.extras.get("ingest_settings")
    settings = configured or default_settings(ctx.config.database.url)
    if ctx.extras.get("worker_slot", 0) > 0:   # several workers (control_plane/workers.py): worker 0 runs jobs
        settings = replace(settings, run_jobs=False)
    return settings


def manager(request: web.Request) -> JobManager:
    return request.app[MANAGER]


async def submit(request: web.Request) -> web.Response:
    await require_operator(request)
    ctx = request.app[CONTEXT]
    req = parse_request(await read_json(request, ctx.config.server.max_body))
    job_id = await manager(request).submit(req)
    ctx.titles.added(req.title_id)
    status_url = f"/api/v1/content/{req.title_id}/encoding-status"
    return json_response({"jobId": job_id, "titleId": req.title_id, "state": "queued", "statusUrl": status_url},
                         202, {"Location": status_url})


async def encoding_status(request: web.Request) -> web.Response:
    await require_operator(request)
    title_id = check_identifier(request.match_info["title_id"], "titleId")
    status = await manager(request).status(title_id)
    if status is None:
        raise not_found("ingest job for title", title_id)
    return json_response(status)


async def cancel(request: web.Request) -> web.Response:
    await require_operator(request)
    job_id = request.match_info["job_id"]
    outcome = await manager(request).cancel(job_id)
    if outcome is None:
        raise not_found("ingest job", job_id)
    state, cancelled = outcome
    if not cancelled:
        raise ApiError(409, "job_finished", f"job {job_id} is already {state}")
    # 202: it runs in the replica that runs jobs, which stops it within `ingest.poll_interval`.
    return json_response({"jobId": job_id, "state": state}, 202 if state == "cancelling" else 200)


def read_ingest_section(s: Section) -> IngestSettings:
    """``[ingest]``: keys left out default to directories beside the config file."""
    return parse_ingest_section(s, f"sqlite:///{Path(s.file).resolve().parent / 'control.db'}")


CONFIG_SECTIONS = {"ingest": read_ingest_section}


def register(app: web.Application) -> None:
    app.router.add_post("/api/v1/content/ingest", submit)
    app.router.add_get("/api/v1/content/{title_id}/encoding-status", encoding_status)
    app.router.add_post("/api/v1/content/jobs/{job_id}/cancel", cancel)


async def on_startup(app: web.Application) -> None:
    ctx = app[CONTEXT]
    settings = settings_for(ctx)
    settings.output_dir.mkdir(parents=True, exist_ok=True)
    app[MANAGER] = JobManager(ctx.engine, settings, ctx.clock)
    await app[MANAGER].start()


async def on_cleanup(app: web.Application) -> None:
    if MANAGER in app:
        await app[MANAGER].stop()


OPENAPI = {
    "/api/v1/content/ingest": {"post": op(
        "Ingest a master file: probe, per-title ladder, encode, package, publish (202 + job id)",
        auth="operator", body=_OBJ, ok=202, ok_schema=_OBJ, errors=(400, 401, 403, 413, 415, 422))},
    "/api/v1/content/{title_id}/encoding-status": {"get": op(
        "The title's latest ingest job: stage, per-rendition state and percent, errors",
        auth="operator", ok_schema=_OBJ, errors=(401, 403, 404), params=(path_param("title_id"),))},
    "/api/v1/content/jobs/{job_id}/cancel": {"post": op(
        "Cancel a queued or running ingest job (its ffmpeg processes are killed)",
        auth="operator", ok_schema=_OBJ, errors=(401, 403, 404, 409), params=(path_param("job_id"),))},
}
OPENAPI["/api/v1/content/jobs/{job_id}/cancel"]["post"]["responses"]["202"] = {
    "description": "The job runs in the replica that runs jobs (ingest.run_jobs): state `cancelling`, "
                   "stopped within ingest.poll_interval", "content": {"application/json": {"schema": _OBJ}}}
