"""What the `oca-control` subcommands share: choosing the database from the flags, running a
coroutine against it, and printing tables or JSON."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from control_plane.config import DEFAULT_CONFIG_PATH, ControlConfig, defaults, load_config, parse_listen
from control_plane.db import migrate
from control_plane.db.engine import create_engine
from oca.config import ConfigError

EXIT_REFUSED = 1


class Refused(Exception):
    """The command cannot do what was asked (exit 1 with the message)."""


# -- configuration selection ------------------------------------------------------------------------

def select_config(args: argparse.Namespace) -> tuple[ControlConfig, Path | None]:
    if getattr(args, "config", None):
        return load_config(args.config), Path(args.config)
    if getattr(args, "data_dir", None):
        listen = parse_listen(args.listen) if getattr(args, "listen", None) else None
        data_dir = Path(args.data_dir)
        config = defaults(data_dir, listen) if listen else defaults(data_dir)
        return config, None
    if getattr(args, "database_url", None):
        base = ControlConfig(file="--database-url")
        return replace(base, database=replace(base.database, url=args.database_url)), None
    if Path(DEFAULT_CONFIG_PATH).exists():
        return load_config(DEFAULT_CONFIG_PATH), Path(DEFAULT_CONFIG_PATH)
    raise ConfigError(DEFAULT_CONFIG_PATH, "", "config file not found (give --config, --data-dir or --database-url)")


def db_options(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument("--config", help="TOML config file (default /etc/oca/oca-control.toml)")
    g.add_argument("--data-dir", help="the data directory of `serve --data-dir` (SQLite inside)")
    g.add_argument("--database-url", help="sqlite:///PATH or postgresql://...")
    p.add_argument("--json", action="store_true", help="machine-readable output")


async def with_db(config: ControlConfig, fn: Callable, *, migrating: bool = False) -> object:
    if config.database.url.startswith("sqlite"):
        path = config.database.url.split(":///", 1)[-1]
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(config.database.url, pool_size=2)
    try:
        missing = await migrate.pending(engine)
        if missing and not migrating:
            raise Refused(f"the database needs {len(missing)} migration(s): run `oca-control db upgrade`")
        return await fn(engine)
    finally:
        await engine.dispose()


# -- output ------------------------------------------------------------------------------------------

def emit(args: argparse.Namespace, value: object, table: list[list[str]] | None = None,
          header: list[str] | None = None) -> None:
    if args.json or table is None:
        print(json.dumps(value, indent=2, sort_keys=True))
        return
    rows = [header] + table if header else table
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))] if rows else []
    for r in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())


def human_bytes(n: int | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if abs(n) < 1000 or unit == "PB":
            return f"{n:.0f}{unit}" if unit == "B" else f"{n:.1f}{unit}"
        n /= 1000
    return str(n)




def opt(args: argparse.Namespace, mapping: dict[str, str]) -> dict:
    """The options that were given, renamed to body fields."""
    return {field: getattr(args, attr) for field, attr in mapping.items() if getattr(args, attr) is not None}
