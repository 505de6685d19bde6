"""`oca-control ingest TITLE_ID MASTER_FILE`: ingest a master with a progress bar.

Two ways, same job model:
- default: the job is written to the database (``--config`` / ``--data-dir`` / ``--database-url``)
  and run in this process, like the catalog commands act on the database directly. Interrupted
  (Ctrl-C), the job stays queued and the next ``oca-control serve`` (or ``ingest --resume``) on
  that database finishes it.
- ``--server URL --token-file FILE``: submit to a running control plane and follow its
  ``encoding-status``.
Exit codes: 0 done, 1 failed or refused (the message says why), 2 configuration error.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

import aiohttp

from control_plane.cli_support import EXIT_REFUSED, Refused, db_options, emit, select_config, with_db
from control_plane.ingest_jobs import JobManager, default_settings, parse_request

BAR = 30


def bar(status: dict) -> str:
    """One progress line: ``[#####.....]  45.0% encoding  avc-720p-2000k.mp4 61%``."""
    job = status["job"]
    done = int(BAR * job["percent"] / 100)
    busy = [o for o in status["renditions"] if o["state"] in ("encoding", "packaging")]
    current = f"  {busy[0]['name']} {busy[0]['percent']:.0f}%" if busy else ""
    return f"[{'#' * done}{'.' * (BAR - done)}] {job['percent']:5.1f}% {job['stage']:<10}{current}"


class Progress:
    """Redraws one line on a terminal; prints a line per stage change otherwise."""

    def __init__(self, stream=sys.stderr) -> None:
        self.stream, self.tty, self.last = stream, stream.isatty(), None

    def show(self, status: dict) -> None:
        line = bar(status)
        if self.tty:
            self.stream.write("\r" + line.ljust(100))
        elif status["job"]["stage"] != self.last:
            self.stream.write(line + "\n")
        self.last = status["job"]["stage"]
        self.stream.flush()

    def end(self) -> None:
        if self.tty:
            self.stream.write("\n")


def _body(args: argparse.Namespace) -> dict:
    master = args.master if "://" in args.master else f"file://{Path(args.master).resolve()}"
    body = {"titleId": args.title_id, "masterFileUrl": master, "metadata": {}}
    for name in ("name", "type", "language"):
        if getattr(args, name):
            body["metadata"][name] = getattr(args, name)
    if args.subtitles:
        body["subtitles"] = [{"url": f"file://{Path(p).resolve()}", "language": lang}
                             for lang, _, p in (s.partition("=") for s in args.subtitles)]
    return body


async def _follow(fetch, progress: Progress, interval: float = 0.5) -> dict:
    while True:
        status = await fetch()
        if status is not None:
            progress.show(status)
            if status["job"]["state"] in ("done", "failed", "cancelled"):
                progress.end()
                return status
        await asyncio.sleep(interval)


def cmd_ingest(args: argparse.Namespace) -> int:
    progress = Progress()
    if args.server:
        status = asyncio.run(_remote(args, progress))
    else:
        config, _ = select_config(args)
        settings = getattr(config, "ingest", None) or default_settings(config.database.url)

        async def run(engine):
            manager = JobManager(engine, settings)
            if not args.resume:
                await manager.submit(parse_request(_body(args)))
            await manager.start()
            try:
                return await _follow(lambda: manager.status(args.title_id), progress)
            finally:
                await manager.stop()

        status = asyncio.run(with_db(config, run))
    emit(args, status, [[o["name"], o["kind"], o["state"], str(o["size"] or "-"), (o["sha256"] or "-")[:16]]
                        for o in status["renditions"]], ["file", "kind", "state", "size", "sha256"])
    if status["job"]["state"] != "done":
        print(f"oca-control: ingest {status['job']['state']}: {status['job']['error'] or ''}", file=sys.stderr)
        return EXIT_REFUSED
    return 0


async def _remote(args: argparse.Namespace, progress: Progress) -> dict:
    token = Path(args.token_file).read_text().strip() if args.token_file else ""
    base = args.server.rstrip("/")
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as session:
        async with session.post(f"{base}/api/v1/content/ingest", json=_body(args)) as r:
            answer = await r.json()
            if r.status != 202:
                raise Refused(f"the control plane refused the ingest ({r.status}): {answer['error']['message']}")

        async def fetch():
            async with session.get(f"{base}{answer['statusUrl']}") as r:
                return await r.json() if r.status == 200 else None

        return await _follow(fetch, progress)


def add_parsers(sub) -> None:
    p = sub.add_parser("ingest", help="ingest a master file (probe, per-title ladder, encode, package, publish)")
    p.add_argument("title_id")
    p.add_argument("master", help="path, file:// or http(s):// URL of the master")
    p.add_argument("--name", help="title name, when the title is new")
    p.add_argument("--type", help="title type, when the title is new (default movie)")
    p.add_argument("--language", help="title language, when the title is new")
    p.add_argument("--subtitles", action="append", metavar="LANG=FILE", help="sidecar subtitles (repeatable)")
    p.add_argument("--resume", action="store_true", help="only run what is queued (an interrupted ingest)")
    p.add_argument("--server", help="submit to a running control plane at this URL instead")
    p.add_argument("--token-file", help="operator token file for --server")
    db_options(p)
    p.set_defaults(fn=cmd_ingest)
