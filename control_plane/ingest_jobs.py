"""Ingest jobs: persisted in SQL, run by a bounded pool of workers, resumable and cancellable.

A job row goes ``queued → running → done | failed | cancelled``. Workers (``max_jobs`` of them) take
queued jobs; every job's ffmpeg processes share one semaphore of ``max_ffmpeg`` slots, so the box
never runs more encoders than configured however many jobs are queued. State, stage and per-output
progress are written to SQL as they change (progress at most once per ``progress_interval`` per
output), so ``GET .../encoding-status`` reads it from any replica. On start, jobs left ``running``
by a crash or a restart are queued again; outputs already published (``ready`` with their file
present) are kept, the rest are encoded again. A finished job writes each file into the catalog
(`renditions`: size, SHA-256, status ``ready``) and its box layout into `rendition_layouts`.

Replicas: several control-plane processes may share one database (behind a load balancer), but only
one may run jobs (``[ingest] run_jobs``, true by default), or each would requeue and encode the
others' jobs. The others store a submitted job and leave it to the runner, which looks for queued jobs
every ``poll_interval``; cancelling a job that runs elsewhere marks it ``cancelling``, and the runner
stops it at its next look (``running → cancelling → cancelled``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    delete,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from control_plane import catalog
from control_plane.db import catalog as catalog_repo
from control_plane.encoding import EncodeSettings, FfmpegFailed, FfmpegRunner
from control_plane.errors import ApiError, invalid
from control_plane.ingest import IngestError, OutputStatus, Pipeline, check_title_id, local_path
from control_plane.packaging import PackagingError
from control_plane.probe import MasterRejected
from oca.config import Section

log = logging.getLogger("oca.control.ingest")

metadata = MetaData()
ingest_jobs = Table(
    "ingest_jobs", metadata,
    Column("id", String(64), primary_key=True), Column("title_id", String(64), nullable=False),
    Column("master_url", Text, nullable=False), Column("metadata_json", Text, nullable=False),
    Column("sidecars_json", Text, nullable=False), Column("state", String(16), nullable=False),
    Column("stage", String(16), nullable=False), Column("info_json", Text), Column("error", Text),
    Column("attempts", Integer, nullable=False), Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)
ingest_outputs = Table(
    "ingest_outputs", metadata,
    Column("job_id", String(64), primary_key=True), Column("name", String(200), primary_key=True),
    Column("kind", String(16), nullable=False), Column("state", String(16), nullable=False),
    Column("percent", Float, nullable=False), Column("size", BigInteger), Column("sha256", String(64)),
    Column("detail_json", Text), Column("error", Text), Column("updated_at", Float, nullable=False),
)
rendition_layouts = Table(
    "rendition_layouts", metadata,
    Column("key", String(512), primary_key=True), Column("title_id", String(64), nullable=False),
    Column("layout_json", Text, nullable=False), Column("frame_rate", Float, nullable=False),
    Column("language", String(35), nullable=False),
)


@dataclass(frozen=True)
class IngestSettings:
    output_dir: Path
    work_dir: Path
    max_jobs: int = 1
    max_ffmpeg: int = 2
    segment_s: float = 2.0
    preset: str = "veryfast"
    progress_interval: float = 1.0
    run_jobs: bool = True          # False on all replicas but one (see the module docstring)
    poll_interval: float = 2.0     # how often the runner looks for jobs stored by other replicas


def parse_ingest_section(s: Section, database_url: str) -> IngestSettings:
    """``[ingest]`` of oca-control.toml (keys in docs/ingest-and-playback.md); absent keys take
    `default_settings(database_url)`."""
    d = default_settings(database_url)
    out = Path(s.path("output_dir", str(d.output_dir)))
    work_default = out.with_name("ingest-work") if s.has("output_dir") else d.work_dir
    out = IngestSettings(
        output_dir=out, work_dir=Path(s.path("work_dir", str(work_default))),
        max_jobs=s.int("max_jobs", 1, min=1, max=64), max_ffmpeg=s.int("max_ffmpeg", 2, min=1, max=256),
        segment_s=s.float("segment_s", 2.0, min=1.0, max=10.0), preset=s.choice(
            "preset", ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow"), "veryfast"),
        progress_interval=s.duration("progress_interval", "1s"),
        run_jobs=s.bool("run_jobs", True), poll_interval=s.duration("poll_interval", "2s"),
    )
    if out.poll_interval <= 0:
        raise s.error("poll_interval", "must be positive")
    s.done()
    return out


def default_settings(database_url: str) -> IngestSettings:
    """Without an ``[ingest]`` section: ``content/`` and ``ingest-work/`` next to the SQLite database
    (the working directory for PostgreSQL)."""
    from sqlalchemy.engine import make_url

    url = make_url(database_url)
    sqlite = url.get_backend_name() == "sqlite" and url.database
    base = Path(url.database).resolve().parent if sqlite else Path.cwd()
    return IngestSettings(output_dir=base / "content", work_dir=base / "ingest-work")


@dataclass(frozen=True)
class IngestRequest:
    title_id: str
    master_url: str
    metadata: dict
    sidecars: tuple[tuple[str, str], ...] = ()


def parse_request(body: object) -> IngestRequest:
    """``{titleId, masterFileUrl, metadata?, subtitles?: [{url, language}]}`` → request, or 422."""
    if not isinstance(body, dict):
        raise invalid("body", "expected a JSON object")
    unknown = set(body) - {"titleId", "masterFileUrl", "metadata", "subtitles"}
    if unknown:
        raise invalid(sorted(unknown)[0], "unknown field", "unknown_field")
    title_id, url = body.get("titleId"), body.get("masterFileUrl")
    if not isinstance(title_id, str):
        raise invalid("titleId", "required string")
    try:
        check_title_id(title_id)
        if not isinstance(url, str) or not url:
            raise invalid("masterFileUrl", "required string")
        local_path(url)
    except IngestError as e:
        raise invalid("titleId" if "titleId" in e.reason else "masterFileUrl", e.reason) from None
    meta = body.get("metadata", {})
    if not isinstance(meta, dict):
        raise invalid("metadata", "expected an object")
    sidecars = []
    for n, sub in enumerate(body.get("subtitles") or []):
        if not isinstance(sub, dict) or not isinstance(sub.get("url"), str):
            raise invalid(f"subtitles[{n}]", "expected {url, language}")
        lang = sub.get("language", "und")
        if not (isinstance(lang, str) and lang.isalpha() and 2 <= len(lang) <= 3):
            raise invalid(f"subtitles[{n}].language", "expected a 2-3 letter language code")
        path = local_path(sub["url"])
        if path is None:
            raise invalid(f"subtitles[{n}].url", "sidecar subtitles must be file:// URLs")
        sidecars.append((path, lang))
    return IngestRequest(title_id, url, meta, tuple(sidecars))


def title_from_metadata(title_id: str, meta: dict) -> catalog.Title:
    """The catalog title an ingest creates when the title does not exist yet (422 names a bad field)."""
    body = {"type": "movie", "name": title_id, "language": "und"} | {
        k: v for k, v in meta.items() if k in {"type", "name", "language", "year", "maturity_rating", "synopsis"}}
    try:
        return catalog.parse_title(body | {"id": title_id})
    except ApiError as e:
        raise invalid(f"metadata.{e.field}", e.message) from None


class JobManager:
    """Owns the queue and the workers; the API and the CLI talk to it."""

    def __init__(self, engine: AsyncEngine, settings: IngestSettings, clock: Callable[[], float] = time.time,
                 runner: FfmpegRunner | None = None) -> None:
        self.engine, self.settings, self.clock = engine, settings, clock
        self.pipeline = Pipeline(
            settings.output_dir, settings.work_dir, runner or FfmpegRunner(), asyncio.Semaphore(settings.max_ffmpeg),
            EncodeSettings(segment_s=settings.segment_s, preset=settings.preset))
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._workers: list[asyncio.Task] = []
        self._running: dict[str, asyncio.Task] = {}
        self._known: set[str] = set()      # queued here and not finished: a look must not queue it twice
        self._stopping = False
        self._last_write: dict[tuple[str, str], float] = {}
        self.idle = asyncio.Event()

    async def start(self) -> None:
        """The runner: requeue what a previous process left unfinished (a cancel asked meanwhile
        wins), then start `max_jobs` workers and the poller. Other replicas start nothing."""
        if not self.settings.run_jobs:
            return
        async with self.engine.begin() as conn:
            cancelling = select(ingest_jobs.c.id).where(ingest_jobs.c.state == "cancelling")
            await conn.execute(update(ingest_outputs).where(ingest_outputs.c.job_id.in_(cancelling),
                                                            ingest_outputs.c.state != "ready")
                               .values(state="cancelled", updated_at=self.clock()))
            await conn.execute(update(ingest_jobs).where(ingest_jobs.c.state == "cancelling")
                               .values(state="cancelled", stage="cancelled", updated_at=self.clock()))
            await conn.execute(update(ingest_jobs).where(ingest_jobs.c.state == "running")
                               .values(state="queued", stage="requeued", updated_at=self.clock()))
        await self._look()
        self._workers = [asyncio.ensure_future(self._worker()) for _ in range(self.settings.max_jobs)]
        self._workers.append(asyncio.ensure_future(self._poll()))

    async def stop(self) -> None:
        """Stop the workers; a job cut short stays queued in SQL and resumes at the next start."""
        self._stopping = True
        for task in self._workers:
            task.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.settings.poll_interval)
            try:
                await self._look()
            except Exception:   # a database hiccup must not end the polling; the next look retries
                log.exception("ingest: looking for jobs failed")

    async def _look(self) -> None:
        """Queue the jobs other replicas stored; stop the ones they asked to cancel."""
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(ingest_jobs.c.id, ingest_jobs.c.state)
                                       .where(ingest_jobs.c.state.in_(("queued", "cancelling")))
                                       .order_by(ingest_jobs.c.created_at))).all()
        for job_id, state in rows:
            if state == "queued" and job_id not in self._known:
                self._enqueue(job_id)
            elif state == "cancelling" and job_id in self._running:
                self._running[job_id].cancel()

    def _enqueue(self, job_id: str) -> None:
        self._known.add(job_id)
        self.idle.clear()
        self._queue.put_nowait(job_id)

    async def submit(self, req: IngestRequest) -> str:
        now, job_id = self.clock(), uuid.uuid4().hex
        title = title_from_metadata(req.title_id, req.metadata)
        async with self.engine.begin() as conn:
            if await catalog_repo.get_title(conn, req.title_id) is None:
                await catalog_repo.insert_title(conn, title, now)
            await conn.execute(ingest_jobs.insert().values(
                id=job_id, title_id=req.title_id, master_url=req.master_url, metadata_json=json.dumps(req.metadata),
                sidecars_json=json.dumps(req.sidecars), state="queued", stage="queued", info_json=None, error=None,
                attempts=0, created_at=now, updated_at=now))
        if self.settings.run_jobs:
            self._enqueue(job_id)
        return job_id

    async def cancel(self, job_id: str) -> tuple[str, bool] | None:
        """Cancel a queued or running job: (state afterwards, whether this call cancelled it), or None
        when there is no such job."""
        async with self.engine.begin() as conn:
            row = (await conn.execute(select(ingest_jobs.c.state).where(ingest_jobs.c.id == job_id))).first()
            if row is None:
                return None
            if row.state == "queued":
                await self._set(conn, job_id, state="cancelled", stage="cancelled")
                return "cancelled", True
        task = self._running.get(job_id)
        if task is not None:
            task.cancel()
            await asyncio.wait({task})
            return "cancelled", True
        if row.state == "running":      # running in the runner replica: it stops it at its next look
            async with self.engine.begin() as conn:
                changed = await conn.execute(update(ingest_jobs).where(
                    ingest_jobs.c.id == job_id, ingest_jobs.c.state == "running").values(
                    state="cancelling", updated_at=self.clock()))
            if changed.rowcount:
                return "cancelling", True
            async with self.engine.connect() as conn:     # it ended meanwhile: say how
                return (await conn.execute(select(ingest_jobs.c.state)
                                           .where(ingest_jobs.c.id == job_id))).scalar_one(), False
        return row.state, False

    async def _worker(self) -> None:
        while True:
            if self._queue.empty():
                self.idle.set()
            job_id = await self._queue.get()
            task = asyncio.ensure_future(self._run(job_id))
            self._running[job_id] = task
            try:
                await asyncio.shield(task)
            except asyncio.CancelledError:
                if self._stopping:  # shutting down: stop the job too; it stays queued for the next start
                    task.cancel()
                    await asyncio.gather(task, return_exceptions=True)
                    raise
            finally:
                self._running.pop(job_id, None)
                self._known.discard(job_id)

    async def _run(self, job_id: str) -> None:
        async with self.engine.begin() as conn:
            job = (await conn.execute(select(ingest_jobs).where(ingest_jobs.c.id == job_id))).first()
            if job is None or job.state != "queued":
                return
            await self._set(conn, job_id, state="running", stage="starting", attempts=job.attempts + 1, error=None)
            done = {r.name: _status(r) for r in await conn.execute(
                select(ingest_outputs).where(ingest_outputs.c.job_id == job_id, ingest_outputs.c.state == "ready"))}
        try:
            outputs = await self.pipeline.run(
                job_id, job.title_id, job.master_url, lambda stage, info: self._stage(job_id, stage, info),
                lambda status: self._output(job_id, status), done,
                [tuple(s) for s in json.loads(job.sidecars_json)])
            await self._publish(job_id, job.title_id, outputs)
        except asyncio.CancelledError:
            state = "queued" if self._stopping else "cancelled"
            async with self.engine.begin() as conn:
                where = [ingest_jobs.c.id == job_id]
                if self._stopping:  # a job another replica asked to cancel stays `cancelling`; start() ends it
                    where.append(ingest_jobs.c.state == "running")
                await conn.execute(update(ingest_jobs).where(*where)
                                   .values(state=state, stage=state, updated_at=self.clock()))
                await conn.execute(update(ingest_outputs).where(
                    ingest_outputs.c.job_id == job_id, ingest_outputs.c.state != "ready").values(
                    state="cancelled" if state == "cancelled" else "pending", updated_at=self.clock()))
            raise
        except (MasterRejected, IngestError, FfmpegFailed, PackagingError, OSError) as e:
            reason = getattr(e, "reason", None) or str(e)
            log.warning("ingest failed", extra={"fields": {"job": job_id, "title": job.title_id, "error": reason}})
            await self._fail(job_id, reason)
        except Exception as e:  # a bug must fail this job, not kill the worker that runs the next ones
            log.exception("ingest crashed", extra={"fields": {"job": job_id, "title": job.title_id}})
            await self._fail(job_id, f"internal error: {type(e).__name__}: {e}")

    async def _fail(self, job_id: str, reason: str) -> None:
        async with self.engine.begin() as conn:
            await self._set(conn, job_id, state="failed", stage="failed", error=reason[:2000])

    async def _set(self, conn: AsyncConnection, job_id: str, **values) -> None:
        await conn.execute(update(ingest_jobs).where(ingest_jobs.c.id == job_id)
                           .values(**values, updated_at=self.clock()))

    async def _stage(self, job_id: str, stage: str, info: dict) -> None:
        values = {"stage": stage} | ({"info_json": json.dumps(info)} if info else {})
        async with self.engine.begin() as conn:
            await self._set(conn, job_id, **values)

    async def _output(self, job_id: str, s: OutputStatus) -> None:
        now, key = self.clock(), (job_id, s.name)
        recent = now - self._last_write.get(key, 0.0) < self.settings.progress_interval
        if s.state == "encoding" and s.percent and recent:
            return
        self._last_write[key] = now
        detail = json.dumps({k: getattr(s, k) for k in ("codec", "width", "height", "bitrate_bps", "language",
                                                        "frame_rate", "layout")})
        values = dict(kind=s.kind, state=s.state, percent=s.percent, size=s.size, sha256=s.sha256,
                      detail_json=detail, error=s.error, updated_at=now)
        async with self.engine.begin() as conn:
            changed = await conn.execute(update(ingest_outputs).where(
                ingest_outputs.c.job_id == job_id, ingest_outputs.c.name == s.name).values(**values))
            if changed.rowcount == 0:
                await conn.execute(ingest_outputs.insert().values(job_id=job_id, name=s.name, **values))

    async def _publish(self, job_id: str, title_id: str, outputs: list[OutputStatus]) -> None:
        """Every file into the catalog as a ready rendition (+ its layout), in one transaction."""
        now = self.clock()
        duration = max((sum(o.layout["durations"]) / o.layout["timescale"] for o in outputs if o.layout), default=0)
        async with self.engine.begin() as conn:
            for o in outputs:
                key = f"{title_id}/{o.name}"
                r = catalog.Rendition(key=key, title_id=title_id, kind=o.kind, codec=o.codec or "", status="ready",
                                      width=o.width, height=o.height, bitrate_bps=o.bitrate_bps,
                                      language=o.language, size=o.size, sha256=o.sha256)
                if not await catalog_repo.update_rendition(conn, r, now):
                    await catalog_repo.insert_rendition(conn, r, now)
                await conn.execute(delete(rendition_layouts).where(rendition_layouts.c.key == key))
                if o.layout is not None:
                    await conn.execute(rendition_layouts.insert().values(
                        key=key, title_id=title_id, layout_json=json.dumps(o.layout), frame_rate=o.frame_rate,
                        language=o.language))
            title = await catalog_repo.get_title(conn, title_id)
            if title is not None and title.duration_s is None:
                await catalog_repo.update_title(conn, replace(title, duration_s=int(round(duration))), now)
            await self._set(conn, job_id, state="done", stage="done")
        log.info("ingest done", extra={"fields": {"job": job_id, "title": title_id, "files": len(outputs)}})

    async def status(self, title_id: str) -> dict | None:
        """The title's latest job and its outputs (the encoding-status document), or None."""
        async with self.engine.connect() as conn:
            job = (await conn.execute(select(ingest_jobs).where(ingest_jobs.c.title_id == title_id)
                                      .order_by(ingest_jobs.c.created_at.desc()).limit(1))).first()
            if job is None:
                return None
            rows = (await conn.execute(select(ingest_outputs).where(ingest_outputs.c.job_id == job.id)
                                       .order_by(ingest_outputs.c.name))).all()
        outputs = [{"name": r.name, "key": f"{title_id}/{r.name}", "kind": r.kind, "state": r.state,
                    "percent": r.percent, "size": r.size, "sha256": r.sha256, "error": r.error} for r in rows]
        percent = 100.0 if job.state == "done" else (
            round(sum(o["percent"] for o in outputs) / len(outputs), 1) if outputs else 0.0)
        return {"titleId": title_id, "job": {
            "id": job.id, "state": job.state, "stage": job.stage, "percent": percent, "error": job.error,
            "attempts": job.attempts, "masterFileUrl": job.master_url, "created_at": job.created_at,
            "updated_at": job.updated_at, "info": json.loads(job.info_json) if job.info_json else None},
            "renditions": outputs}


def _status(row) -> OutputStatus:
    detail = json.loads(row.detail_json or "{}")
    return OutputStatus(row.name, row.kind, row.state, row.percent, row.size, row.sha256,
                        **{k: v for k, v in detail.items() if v is not None})
