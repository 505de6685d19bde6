"""`oca-control title|rendition|licence ...`: the catalog and licences, straight in the database."""

from __future__ import annotations

import argparse
import asyncio
import time

from control_plane import catalog, licensing
from control_plane.cli_support import Refused, db_options, emit, human_bytes, opt, select_config, with_db
from control_plane.db import catalog as catalog_repo
from control_plane.db import licences as licences_repo
from oca.config import parse_size


def cmd_title(args: argparse.Namespace) -> int:
    config, _ = select_config(args)
    now = time.time()

    async def run(engine):
        if args.action == "add":
            title = catalog.parse_title({"id": args.id, **opt(args, {
                "name": "name", "type": "type", "language": "language", "year": "year",
                "maturity_rating": "rating", "duration_s": "duration", "synopsis": "synopsis"})})
            async with engine.begin() as conn:
                if await catalog_repo.get_title(conn, title.id):
                    raise Refused(f"title {title.id!r} already exists")
                await catalog_repo.insert_title(conn, title, now)
            return title.to_json()
        async with engine.begin() as conn:
            if args.action == "list":
                return [t.to_json() for t in await catalog_repo.list_titles(conn, limit=100000)]
            title = await catalog_repo.get_title(conn, args.id)
            if title is None:
                raise Refused(f"title {args.id!r} does not exist")
            if args.action == "delete":
                await catalog_repo.delete_title(conn, args.id)
                return {"deleted": args.id}
            return title.to_json() | {
                "renditions": [r.to_json() for r in await catalog_repo.list_renditions(conn, args.id)],
                "licenses": [lic.to_json() for lic in await licences_repo.for_title(conn, args.id)]}

    out = asyncio.run(with_db(config, run))
    if args.action == "list":
        emit(args, out, [[t["id"], t["type"], t["language"], str(t["year"] or "-"), t["name"]] for t in out],
             ["id", "type", "lang", "year", "name"])
    else:
        emit(args, out)
    return 0


def cmd_rendition(args: argparse.Namespace) -> int:
    config, _ = select_config(args)
    now = time.time()

    async def run(engine):
        async with engine.begin() as conn:
            if args.action == "add":
                if await catalog_repo.get_title(conn, args.title_id) is None:
                    raise Refused(f"title {args.title_id!r} does not exist")
                size = parse_size(args.size) if args.size is not None else None
                r = catalog.parse_rendition(args.title_id, {"key": args.key, **opt(args, {
                    "kind": "kind", "codec": "codec", "status": "status", "width": "width", "height": "height",
                    "bitrate_bps": "bitrate", "language": "language", "sha256": "sha256"}),
                    **({"size": size} if size is not None else {})})
                if await catalog_repo.get_rendition(conn, r.key):
                    raise Refused(f"rendition {r.key!r} already exists")
                await catalog_repo.insert_rendition(conn, r, now)
                return r.to_json()
            if args.action == "list":
                return [r.to_json() for r in await catalog_repo.list_renditions(conn, args.title_id)]
            if not await catalog_repo.delete_rendition(conn, args.key):
                raise Refused(f"rendition {args.key!r} does not exist")
            return {"deleted": args.key}

    out = asyncio.run(with_db(config, run))
    if args.action == "list":
        emit(args, out, [[r["key"], r["kind"], r["codec"], r["status"], human_bytes(r["size"])] for r in out],
             ["key", "kind", "codec", "status", "size"])
    else:
        emit(args, out)
    return 0


def cmd_licence(args: argparse.Namespace) -> int:
    config, _ = select_config(args)

    async def run(engine):
        async with engine.begin() as conn:
            if await catalog_repo.get_title(conn, args.title_id) is None:
                raise Refused(f"title {args.title_id!r} does not exist")
            if args.action == "add":
                lic = licensing.parse_licence(args.title_id, {"region": args.region, "start": args.start,
                                                              "end": args.end, "exclusive": args.exclusive})
                replaced = await licences_repo.replace(conn, lic)
                return lic.to_json() | {"replaced": replaced}
            if args.action == "list":
                return [lic.to_json() for lic in await licences_repo.for_title(conn, args.title_id)]
            if not await licences_repo.delete_one(conn, args.title_id, args.region):
                raise Refused(f"title {args.title_id!r} has no licence for {args.region}")
            return {"deleted": f"{args.title_id}/{args.region}"}

    out = asyncio.run(with_db(config, run))
    if args.action == "list":
        emit(args, out, [[lic["region"], lic["start"], lic["end"] or "open", "yes" if lic["exclusive"] else "no"]
                         for lic in out], ["region", "start", "end", "exclusive"])
    else:
        emit(args, out)
    return 0


def add_parsers(sub) -> None:
    t = sub.add_parser("title", help="catalog titles")
    tsub = t.add_subparsers(dest="action", required=True)
    ta = tsub.add_parser("add")
    ta.add_argument("id")
    ta.add_argument("--name", required=True)
    ta.add_argument("--type", default="movie", choices=catalog.TITLE_TYPES)
    ta.add_argument("--language", required=True)
    ta.add_argument("--year", type=int)
    ta.add_argument("--rating")
    ta.add_argument("--duration", type=int, help="seconds")
    ta.add_argument("--synopsis")
    for name in ("list", "show", "delete"):
        x = tsub.add_parser(name)
        if name != "list":
            x.add_argument("id")
        db_options(x)
    db_options(ta)
    t.set_defaults(fn=cmd_title)

    r = sub.add_parser("rendition", help="a title's files")
    rsub = r.add_subparsers(dest="action", required=True)
    ra = rsub.add_parser("add")
    ra.add_argument("title_id")
    ra.add_argument("key")
    ra.add_argument("--kind", required=True, choices=catalog.RENDITION_KINDS)
    ra.add_argument("--codec", required=True)
    ra.add_argument("--status", choices=catalog.RENDITION_STATUSES)
    ra.add_argument("--size")
    ra.add_argument("--sha256")
    ra.add_argument("--width", type=int)
    ra.add_argument("--height", type=int)
    ra.add_argument("--bitrate", type=int)
    ra.add_argument("--language")
    db_options(ra)
    rl = rsub.add_parser("list")
    rl.add_argument("title_id")
    db_options(rl)
    rd = rsub.add_parser("delete")
    rd.add_argument("key")
    db_options(rd)
    r.set_defaults(fn=cmd_rendition)

    lp = sub.add_parser("licence", aliases=["license"], help="regional licences")
    lsub = lp.add_subparsers(dest="action", required=True)
    la = lsub.add_parser("add", help="add or replace the region's licence")
    la.add_argument("title_id")
    la.add_argument("region")
    la.add_argument("--start", required=True, help="RFC 3339, e.g. 2026-01-01T00:00:00Z")
    la.add_argument("--end", help="RFC 3339 (exclusive); none = open-ended")
    la.add_argument("--exclusive", action="store_true")
    db_options(la)
    ll = lsub.add_parser("list")
    ll.add_argument("title_id")
    db_options(ll)
    ld = lsub.add_parser("delete")
    ld.add_argument("title_id")
    ld.add_argument("region")
    db_options(ld)
    lp.set_defaults(fn=cmd_licence)
