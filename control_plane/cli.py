"""`oca-control`: serve the API, migrate the database, and operate the catalog and the fleet.

    oca-control serve --config /etc/oca/oca-control.toml
    oca-control serve --listen 127.0.0.1:8000 --data-dir ./run/control
    oca-control db upgrade            [--config FILE | --data-dir DIR | --database-url URL]
    oca-control title add t1 --name "Big Buck Bunny" --type movie --language en [--year 2008 ...]
    oca-control rendition add t1 t1/avc-720p.mp4 --kind video --codec avc1 --status ready --size N --sha256 H
    oca-control licence add t1 DE --start 2026-01-01T00:00:00Z [--end ...] [--exclusive]
    oca-control appliance register isp1-a --kind embedded --site fra-isp1 --region eu-central --country DE \
        --asn 64500 --base-url http://10.0.0.5:8080 --ssd 2TB --hdd 10TB --link 10000000000
    oca-control token create steering --role service
    oca-control status

Operator commands act on the database directly (the same validation as the API); every command
takes ``--json``. Exit codes: 0 ok, 1 refused (the message says why), 2 configuration error.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy.exc import IntegrityError

from control_plane import catalog, credentials, fleet, licensing, logs
from control_plane.config import DEFAULT_CONFIG_PATH, ControlConfig, defaults, load_config, parse_listen
from control_plane.db import catalog as catalog_repo
from control_plane.db import fleet as fleet_repo
from control_plane.db import licences as licences_repo
from control_plane.db import migrate
from control_plane.db import tokens as tokens_repo
from control_plane.db.engine import create_engine
from control_plane.errors import ApiError
from control_plane.validation import format_time
from oca.config import EXIT_CONFIG, ConfigError, parse_size

EXIT_REFUSED = 1


class Refused(Exception):
    pass


# -- configuration selection ------------------------------------------------------------------------

def _config(args: argparse.Namespace) -> tuple[ControlConfig, Path | None]:
    if getattr(args, "config", None):
        return load_config(args.config), Path(args.config)
    if getattr(args, "data_dir", None):
        listen = parse_listen(args.listen) if getattr(args, "listen", None) else None
        data_dir = Path(args.data_dir)
        config = defaults(data_dir, listen) if listen else defaults(data_dir)
        return config, None
    if getattr(args, "database_url", None):
        from dataclasses import replace
        base = ControlConfig(file="--database-url")
        return replace(base, database=replace(base.database, url=args.database_url)), None
    if Path(DEFAULT_CONFIG_PATH).exists():
        return load_config(DEFAULT_CONFIG_PATH), Path(DEFAULT_CONFIG_PATH)
    raise ConfigError(DEFAULT_CONFIG_PATH, "", "config file not found (give --config, --data-dir or --database-url)")


def _db_options(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument("--config", help="TOML config file (default /etc/oca/oca-control.toml)")
    g.add_argument("--data-dir", help="the data directory of `serve --data-dir` (SQLite inside)")
    g.add_argument("--database-url", help="sqlite:///PATH or postgresql://...")
    p.add_argument("--json", action="store_true", help="machine-readable output")


async def _with_db(config: ControlConfig, fn: Callable) -> object:
    if config.database.url.startswith("sqlite"):
        path = config.database.url.split(":///", 1)[-1]
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(config.database.url, pool_size=2)
    try:
        missing = await migrate.pending(engine)
        if missing and fn is not _upgrade:
            raise Refused(f"the database needs {len(missing)} migration(s): run `oca-control db upgrade`")
        return await fn(engine)
    finally:
        await engine.dispose()


# -- output ------------------------------------------------------------------------------------------

def _emit(args: argparse.Namespace, value: object, table: list[list[str]] | None = None,
          header: list[str] | None = None) -> None:
    if args.json or table is None:
        print(json.dumps(value, indent=2, sort_keys=True))
        return
    rows = [header] + table if header else table
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))] if rows else []
    for r in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())


def _human_bytes(n: int | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if abs(n) < 1000 or unit == "PB":
            return f"{n:.0f}{unit}" if unit == "B" else f"{n:.1f}{unit}"
        n /= 1000
    return str(n)


# -- commands ----------------------------------------------------------------------------------------

async def _upgrade(engine) -> list[dict]:
    return [{"number": s.number, "name": s.name} for s in await migrate.upgrade(engine)]


def cmd_db(args: argparse.Namespace) -> int:
    config, _ = _config(args)
    if args.action == "upgrade":
        applied = asyncio.run(_with_db(config, _upgrade))
        _emit(args, {"applied": applied}, [[str(a["number"]), a["name"]] for a in applied] or [["up to date", ""]])
        return 0

    async def status(engine):
        done = await migrate.applied(engine)
        return [{"number": m.number, "name": m.name, "applied": m.number in done} for m in migrate.discover()]
    rows = asyncio.run(_with_db_any(config, status))
    _emit(args, rows, [[str(r["number"]), r["name"], "applied" if r["applied"] else "PENDING"] for r in rows],
          ["#", "migration", "state"])
    return 0


async def _with_db_any(config: ControlConfig, fn: Callable) -> object:
    engine = create_engine(config.database.url, pool_size=2)
    try:
        return await fn(engine)
    finally:
        await engine.dispose()


def cmd_serve(args: argparse.Namespace) -> int:
    from control_plane import serve

    if args.config and (args.listen or args.data_dir):
        raise ConfigError("--config", "", "give either --config or --listen/--data-dir, not both")
    if args.config:
        config, path = load_config(args.config), Path(args.config)
    else:
        data_dir = Path(args.data_dir or "./oca-control-data")
        data_dir.mkdir(parents=True, exist_ok=True)
        listen = parse_listen(args.listen) if args.listen else parse_listen("127.0.0.1:8000")
        config, path = defaults(data_dir, listen), None
        token_path = config.auth.operator_token_files[0]
        _, created = credentials.ensure_token_file(token_path, os.environ.get("OCA_OPERATOR_TOKEN"))
        how = "created" if created else ("from OCA_OPERATOR_TOKEN" if os.environ.get("OCA_OPERATOR_TOKEN")
                                         else "existing")
        print(f"oca-control: operator token ({how}) stored in {token_path}", flush=True)
    logs.setup(config.log.level, config.log.format)
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    try:
        asyncio.run(serve.run(config, config_path=path))
    except OSError as e:
        print(f"oca-control: cannot listen on {config.server.listen[0]}:{config.server.listen[1]}: {e}",
              file=sys.stderr)
        return EXIT_REFUSED
    except RuntimeError as e:
        print(f"oca-control: {e}", file=sys.stderr)
        return EXIT_REFUSED
    return 0


def _opt(args: argparse.Namespace, mapping: dict[str, str]) -> dict:
    return {field: getattr(args, attr) for field, attr in mapping.items() if getattr(args, attr) is not None}


def cmd_title(args: argparse.Namespace) -> int:
    config, _ = _config(args)
    now = time.time()

    async def run(engine):
        if args.action == "add":
            title = catalog.parse_title({"id": args.id, **_opt(args, {
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

    out = asyncio.run(_with_db(config, run))
    if args.action == "list":
        _emit(args, out, [[t["id"], t["type"], t["language"], str(t["year"] or "-"), t["name"]] for t in out],
              ["id", "type", "lang", "year", "name"])
    else:
        _emit(args, out)
    return 0


def cmd_rendition(args: argparse.Namespace) -> int:
    config, _ = _config(args)
    now = time.time()

    async def run(engine):
        async with engine.begin() as conn:
            if args.action == "add":
                if await catalog_repo.get_title(conn, args.title_id) is None:
                    raise Refused(f"title {args.title_id!r} does not exist")
                size = parse_size(args.size) if args.size is not None else None
                r = catalog.parse_rendition(args.title_id, {"key": args.key, **_opt(args, {
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

    out = asyncio.run(_with_db(config, run))
    if args.action == "list":
        _emit(args, out, [[r["key"], r["kind"], r["codec"], r["status"], _human_bytes(r["size"])] for r in out],
              ["key", "kind", "codec", "status", "size"])
    else:
        _emit(args, out)
    return 0


def cmd_licence(args: argparse.Namespace) -> int:
    config, _ = _config(args)

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

    out = asyncio.run(_with_db(config, run))
    if args.action == "list":
        _emit(args, out, [[lic["region"], lic["start"], lic["end"] or "open", "yes" if lic["exclusive"] else "no"]
                          for lic in out], ["region", "start", "end", "exclusive"])
    else:
        _emit(args, out)
    return 0


def cmd_appliance(args: argparse.Namespace) -> int:
    config, _ = _config(args)
    now = time.time()

    async def run(engine):
        async with engine.begin() as conn:
            if args.action == "register":
                spec = fleet.parse_spec({
                    "id": args.id, "kind": args.kind, "site": args.site, "region": args.region,
                    "country": args.country, "asn": args.asn, "base_url": args.base_url,
                    "capacity": {"ssd": parse_size(args.ssd), "hdd": parse_size(args.hdd)},
                    "link_capacity_bps": args.link})
                if await fleet_repo.token_hash(conn, spec.id) is not None:
                    raise Refused(f"appliance {spec.id!r} is already registered")
                token = credentials.new_token()
                await fleet_repo.insert(conn, spec, credentials.hash_token(token), now)
                return spec.to_json() | {"token": token}
            if args.action == "list":
                return [s.spec.to_json() for s in await fleet_repo.all_states(conn, with_keys=False)]
            if args.action == "rotate-token":
                token = credentials.new_token()
                if not await fleet_repo.set_token_hash(conn, args.id, credentials.hash_token(token), now):
                    raise Refused(f"appliance {args.id!r} is not registered")
                return {"id": args.id, "token": token}
            if not await fleet_repo.delete_one(conn, args.id):
                raise Refused(f"appliance {args.id!r} is not registered")
            return {"deleted": args.id}

    out = asyncio.run(_with_db(config, run))
    if args.action == "list":
        _emit(args, out, [[a["id"], a["kind"], a["site"], a["region"], a["country"], str(a["asn"]), a["base_url"]]
                          for a in out], ["id", "kind", "site", "region", "country", "asn", "base_url"])
    else:
        if not args.json and isinstance(out, dict) and "token" in out:
            print(f"token for {out['id']} (shown once; only its hash is stored): {out['token']}", file=sys.stderr)
        _emit(args, out)
    return 0


def cmd_token(args: argparse.Namespace) -> int:
    config, _ = _config(args)

    async def run(engine):
        async with engine.begin() as conn:
            if args.action == "create":
                token = credentials.new_token()
                try:
                    await tokens_repo.insert(conn, args.name, args.role, credentials.hash_token(token), time.time())
                except IntegrityError:
                    raise Refused(f"a token named {args.name!r} exists") from None
                return {"name": args.name, "role": args.role, "token": token}
            if args.action == "list":
                return [t | {"created_at": format_time(t["created_at"])} for t in await tokens_repo.list_all(conn)]
            if not await tokens_repo.delete_one(conn, args.name):
                raise Refused(f"no token named {args.name!r}")
            return {"deleted": args.name}

    out = asyncio.run(_with_db(config, run))
    if args.action == "list":
        _emit(args, out, [[t["name"], t["role"], t["created_at"]] for t in out], ["name", "role", "created"])
    else:
        _emit(args, out)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    config, _ = _config(args)
    now = time.time()
    stale = config.fleet.stale_after

    async def run(engine):
        async with engine.connect() as conn:
            states = await fleet_repo.all_states(conn, with_keys=False)
            totals = await fleet_repo.inventory_totals(conn)
            titles = await catalog_repo.count_titles(conn)
        rows = []
        for s in states:
            files, size = totals.get(s.spec.id, (0, 0))
            rows.append({"id": s.spec.id, "kind": s.spec.kind, "site": s.spec.site, "region": s.spec.region,
                         "healthy": fleet.is_healthy(s, now, stale), "fresh": fleet.is_fresh(s, now, stale),
                         "health_status": s.health_status, "load_ratio": s.load_ratio, "files_held": files,
                         "bytes_held": size, "capacity_bytes": s.spec.capacity_ssd + s.spec.capacity_hdd,
                         "last_report_age_s": None if s.last_report_at is None else round(now - s.last_report_at, 1)})
        return {"titles": titles, "stale_after_s": stale, "appliances": rows}

    out = asyncio.run(_with_db(config, run))
    table = [[a["id"], a["kind"], a["site"],
              "in" if a["healthy"] else "OUT", a["health_status"] or "-",
              "-" if a["load_ratio"] is None else f"{a['load_ratio']:.2f}",
              str(a["files_held"]), f"{_human_bytes(a['bytes_held'])}/{_human_bytes(a['capacity_bytes'])}",
              "never" if a["last_report_age_s"] is None else f"{a['last_report_age_s']}s"]
             for a in out["appliances"]]
    if not args.json:
        print(f"{out['titles']} titles, {len(table)} appliances (stale after {stale:g}s)")
    _emit(args, out, table, ["id", "kind", "site", "rotation", "health", "load", "files", "held/capacity",
                             "last report"])
    return 0


# -- argument parsing ----------------------------------------------------------------------------------

def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="oca-control", description="OCA stack control plane")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("serve", help="run the API server")
    s.add_argument("--config", help="TOML config file")
    s.add_argument("--listen", help="HOST:PORT (embedded defaults; default 127.0.0.1:8000)")
    s.add_argument("--data-dir", help="directory for SQLite and the operator token (embedded defaults)")
    s.set_defaults(fn=cmd_serve)

    d = sub.add_parser("db", help="database schema")
    d.add_argument("action", choices=("upgrade", "status"))
    _db_options(d)
    d.set_defaults(fn=cmd_db)

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
        _db_options(x)
    _db_options(ta)
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
    _db_options(ra)
    rl = rsub.add_parser("list")
    rl.add_argument("title_id")
    _db_options(rl)
    rd = rsub.add_parser("delete")
    rd.add_argument("key")
    _db_options(rd)
    r.set_defaults(fn=cmd_rendition)

    lp = sub.add_parser("licence", aliases=["license"], help="regional licences")
    lsub = lp.add_subparsers(dest="action", required=True)
    la = lsub.add_parser("add", help="add or replace the region's licence")
    la.add_argument("title_id")
    la.add_argument("region")
    la.add_argument("--start", required=True, help="RFC 3339, e.g. 2026-01-01T00:00:00Z")
    la.add_argument("--end", help="RFC 3339 (exclusive); none = open-ended")
    la.add_argument("--exclusive", action="store_true")
    _db_options(la)
    ll = lsub.add_parser("list")
    ll.add_argument("title_id")
    _db_options(ll)
    ld = lsub.add_parser("delete")
    ld.add_argument("title_id")
    ld.add_argument("region")
    _db_options(ld)
    lp.set_defaults(fn=cmd_licence)

    a = sub.add_parser("appliance", help="the fleet registry")
    asub = a.add_subparsers(dest="action", required=True)
    ar = asub.add_parser("register", help="register; prints the appliance token once")
    ar.add_argument("id")
    ar.add_argument("--kind", required=True, choices=fleet.KINDS)
    ar.add_argument("--site", required=True)
    ar.add_argument("--region", required=True)
    ar.add_argument("--country", required=True)
    ar.add_argument("--asn", type=int, required=True)
    ar.add_argument("--base-url", required=True)
    ar.add_argument("--ssd", default="0", help="SSD tier capacity, e.g. 2TB")
    ar.add_argument("--hdd", default="0", help="HDD tier capacity, e.g. 20TB")
    ar.add_argument("--link", type=int, required=True, help="link capacity, bits per second")
    _db_options(ar)
    for name in ("list", "rotate-token", "delete"):
        x = asub.add_parser(name)
        if name != "list":
            x.add_argument("id")
        _db_options(x)
    a.set_defaults(fn=cmd_appliance)

    k = sub.add_parser("token", help="named operator/service API tokens")
    ksub = k.add_subparsers(dest="action", required=True)
    kc = ksub.add_parser("create", help="prints the token once")
    kc.add_argument("name")
    kc.add_argument("--role", choices=credentials.ROLES, default="service")
    _db_options(kc)
    kl = ksub.add_parser("list")
    _db_options(kl)
    kd = ksub.add_parser("delete")
    kd.add_argument("name")
    _db_options(kd)
    k.set_defaults(fn=cmd_token)

    st = sub.add_parser("status", help="fleet table: rotation, health, load, holdings, report age")
    _db_options(st)
    st.set_defaults(fn=cmd_status)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.fn(args)
    except ConfigError as e:
        print(f"oca-control: {e}", file=sys.stderr)
        return EXIT_CONFIG
    except ApiError as e:
        where = f" ({e.field})" if e.field else ""
        print(f"oca-control: {e.message}{where}", file=sys.stderr)
        return EXIT_REFUSED
    except (Refused, ValueError, OSError) as e:
        print(f"oca-control: {e}", file=sys.stderr)
        return EXIT_REFUSED


if __name__ == "__main__":
    sys.exit(main())
