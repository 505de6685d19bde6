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
    oca-control ingest t1 master.mov [--name "Big Buck Bunny"] [--server URL --token-file FILE]
    oca-control status

Operator commands act on the database directly (the same validation as the API); every command
takes ``--json``. Exit codes: 0 ok, 1 refused (the message says why), 2 configuration error.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

from control_plane import cli_catalog, cli_fleet, cli_ingest, credentials, logs
from control_plane.cli_support import EXIT_REFUSED, Refused, db_options, emit, select_config, with_db
from control_plane.config import defaults, load_config, parse_listen
from control_plane.db import migrate
from control_plane.errors import ApiError
from oca.config import EXIT_CONFIG, ConfigError

# -- commands ----------------------------------------------------------------------------------------

async def _upgrade(engine) -> list[dict]:
    return [{"number": s.number, "name": s.name} for s in await migrate.upgrade(engine)]


def cmd_db(args: argparse.Namespace) -> int:
    config, _ = select_config(args)
    if args.action == "upgrade":
        applied = asyncio.run(with_db(config, _upgrade, migrating=True))
        emit(args, {"applied": applied}, [[str(a["number"]), a["name"]] for a in applied] or [["up to date", ""]])
        return 0

    async def status(engine):
        done = await migrate.applied(engine)
        return [{"number": m.number, "name": m.name, "applied": m.number in done} for m in migrate.discover()]
    rows = asyncio.run(with_db(config, status, migrating=True))
    emit(args, rows, [[str(r["number"]), r["name"], "applied" if r["applied"] else "PENDING"] for r in rows],
         ["#", "migration", "state"])
    return 0


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
    logs.setup(config.log.level, config.log.format, worker=args.worker)
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    try:
        if args.worker is None and config.server.workers > 1:
            from control_plane import workers

            return asyncio.run(workers.supervise(config, path))
        worker = (args.worker, args.port) if args.worker is not None else None
        asyncio.run(serve.run(config, config_path=path, worker=worker))
    except OSError as e:
        print(f"oca-control: cannot listen on {config.server.listen[0]}:{config.server.listen[1]}: {e}",
              file=sys.stderr)
        return EXIT_REFUSED
    except RuntimeError as e:
        print(f"oca-control: {e}", file=sys.stderr)
        return EXIT_REFUSED
    return 0


# -- argument parsing ----------------------------------------------------------------------------------

def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="oca-control", description="OCA stack control plane")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("serve", help="run the API server")
    s.add_argument("--config", help="TOML config file")
    s.add_argument("--listen", help="HOST:PORT (embedded defaults; default 127.0.0.1:8000)")
    s.add_argument("--data-dir", help="directory for SQLite and the operator token (embedded defaults)")
    # Set by the supervisor of a multi-worker serve (control_plane/workers.py) for each worker.
    s.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    s.add_argument("--port", type=int, help=argparse.SUPPRESS)
    s.set_defaults(fn=cmd_serve)

    d = sub.add_parser("db", help="database schema")
    d.add_argument("action", choices=("upgrade", "status"))
    db_options(d)
    d.set_defaults(fn=cmd_db)
    cli_catalog.add_parsers(sub)
    cli_fleet.add_parsers(sub)
    cli_ingest.add_parsers(sub)
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
