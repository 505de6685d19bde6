"""`oca-control appliance|token|status ...`: the fleet registry, API tokens and the fleet table."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

from sqlalchemy.exc import IntegrityError

from control_plane import credentials, fleet
from control_plane.cli_support import Refused, db_options, emit, human_bytes, select_config, with_db
from control_plane.db import catalog as catalog_repo
from control_plane.db import fleet as fleet_repo
from control_plane.db import tokens as tokens_repo
from control_plane.validation import format_time
from oca.config import parse_size


def cmd_appliance(args: argparse.Namespace) -> int:
    config, _ = select_config(args)
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

    out = asyncio.run(with_db(config, run))
    if args.action == "list":
        emit(args, out, [[a["id"], a["kind"], a["site"], a["region"], a["country"], str(a["asn"]), a["base_url"]]
                         for a in out], ["id", "kind", "site", "region", "country", "asn", "base_url"])
    else:
        if not args.json and isinstance(out, dict) and "token" in out:
            print(f"token for {out['id']} (shown once; only its hash is stored): {out['token']}", file=sys.stderr)
        emit(args, out)
    return 0


def cmd_token(args: argparse.Namespace) -> int:
    config, _ = select_config(args)

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

    out = asyncio.run(with_db(config, run))
    if args.action == "list":
        emit(args, out, [[t["name"], t["role"], t["created_at"]] for t in out], ["name", "role", "created"])
    else:
        emit(args, out)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    config, _ = select_config(args)
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

    out = asyncio.run(with_db(config, run))
    table = [[a["id"], a["kind"], a["site"],
              "in" if a["healthy"] else "OUT", a["health_status"] or "-",
              "-" if a["load_ratio"] is None else f"{a['load_ratio']:.2f}",
              str(a["files_held"]), f"{human_bytes(a['bytes_held'])}/{human_bytes(a['capacity_bytes'])}",
              "never" if a["last_report_age_s"] is None else f"{a['last_report_age_s']}s"]
             for a in out["appliances"]]
    if not args.json:
        print(f"{out['titles']} titles, {len(table)} appliances (stale after {stale:g}s)")
    emit(args, out, table, ["id", "kind", "site", "rotation", "health", "load", "files", "held/capacity",
                            "last report"])
    return 0


def add_parsers(sub) -> None:
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
    db_options(ar)
    for name in ("list", "rotate-token", "delete"):
        x = asub.add_parser(name)
        if name != "list":
            x.add_argument("id")
        db_options(x)
    a.set_defaults(fn=cmd_appliance)

    k = sub.add_parser("token", help="named operator/service API tokens")
    ksub = k.add_subparsers(dest="action", required=True)
    kc = ksub.add_parser("create", help="prints the token once")
    kc.add_argument("name")
    kc.add_argument("--role", choices=credentials.ROLES, default="service")
    db_options(kc)
    kl = ksub.add_parser("list")
    db_options(kl)
    kd = ksub.add_parser("delete")
    kd.add_argument("name")
    db_options(kd)
    k.set_defaults(fn=cmd_token)

    st = sub.add_parser("status", help="fleet table: rotation, health, load, holdings, report age")
    db_options(st)
    st.set_defaults(fn=cmd_status)
