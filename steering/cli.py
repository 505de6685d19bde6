"""`oca-steering`: the steering daemon's command line.

    oca-steering serve --config /etc/oca/oca-steering.toml [--listen HOST:PORT]
    oca-steering check-config --config FILE

A configuration error prints one line naming the file and key and exits 2 (`oca.config.EXIT_CONFIG`).
SIGHUP makes `serve` read the file again (`steering.service.Daemon.reload`): a bad file is logged and the
running configuration kept. SIGTERM/SIGINT stop it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import sys
import time
from collections.abc import Callable, Coroutine
from dataclasses import replace
from typing import Any

from aiohttp import web

from oca.config import EXIT_CONFIG, ConfigError, parse_address
from steering.config import SteeringConfig, load_steering_config
from steering.geo import GeoDatabaseError


class JsonLogFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message (and the exception, if any)."""

    def format(self, record: logging.LogRecord) -> str:
        doc = {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(record.created)),
               "level": record.levelname.lower(), "logger": record.name, "message": record.getMessage()}
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return json.dumps(doc)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="oca-steering",
                                     description="Steering: client IP + content -> ranked appliances.")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the steering HTTP service")
    serve.add_argument("--config", required=True,
                       help="TOML config file (see docs/examples/oca-steering.toml)")
    serve.add_argument("--listen", help="HOST:PORT, overrides server.listen")
    check = sub.add_parser("check-config", help="validate the config file and exit")
    check.add_argument("--config", required=True)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    listen = args.listen if args.command == "serve" else None

    def load() -> SteeringConfig:
        config = load_steering_config(args.config)
        if listen:
            try:
                config = replace(config, listen=parse_address(listen))
            except ValueError as e:
                raise ConfigError("--listen", "", str(e)) from None
        return config

    try:
        config = load()
    except ConfigError as e:
        print(f"oca-steering: {e}", file=sys.stderr)
        return EXIT_CONFIG
    if args.command == "check-config":
        print(f"{args.config}: ok")
        return 0
    return serve(config, load)


def serve(config: SteeringConfig, reload_config: Callable[[], SteeringConfig] | None = None) -> int:
    """Run until SIGTERM/SIGINT; SIGHUP calls `reload_config` and swaps in what it returns."""
    from steering.service import create_daemon_app, serve_app

    handler = logging.StreamHandler()
    handler.setFormatter(JsonLogFormatter())
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    try:
        app = create_daemon_app(config, reload_config=reload_config)
    except GeoDatabaseError as e:
        print(f"oca-steering: {e}", file=sys.stderr)
        return EXIT_CONFIG
    run(serve_app(app, *config.listen))
    return 0


def run(main: Coroutine[Any, Any, None]) -> None:
    """Run the server coroutine on a new event loop as `web.run_app` does: SIGTERM/SIGINT end it through
    `web.GracefulExit`, after which the coroutine's own cleanup runs to the end."""
    loop = asyncio.new_event_loop()
    task = loop.create_task(main)
    try:
        loop.run_until_complete(task)
    except (web.GracefulExit, KeyboardInterrupt):
        pass
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                loop.run_until_complete(task)
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


if __name__ == "__main__":
    sys.exit(main())
