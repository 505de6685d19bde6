"""`oca report`: send the appliance report to the control plane every interval (or once).

    oca report --config /etc/oca/oca.toml [--once]

Reads ``[store]`` and ``[reporter]`` of oca.toml. With ``--once`` the exit code says how it went:
0 accepted, 1 not (control plane unreachable or the report rejected); 2 bad configuration.

Without ``--once`` it runs until SIGTERM or SIGINT (exit 0). SIGHUP re-reads the config file: a valid
``[reporter]`` replaces the running one from the next report on; an invalid file is logged and the running
configuration kept; a changed ``[store]`` needs a restart (logged, ignored).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
from dataclasses import replace
from typing import Any

import aiohttp

from oca.config import ConfigError, Section, StoreConfig, load_oca_config
from oca.reporter import Reporter, ReporterConfig, ReportOutcome, read_reporter_config
from oca.store import Store

DEFAULT_CONFIG = "/etc/oca/oca.toml"
log = logging.getLogger(__name__)


def register(sub: Any) -> None:
    p = sub.add_parser("report", help="report health, load, inventory and BGP prefixes to the control plane",
                       description="Send the appliance report (docs/contracts.md) every reporter.interval.")
    p.add_argument("--config", default=DEFAULT_CONFIG, metavar="FILE",
                   help=f"the appliance's TOML config (default {DEFAULT_CONFIG})")
    p.add_argument("--once", action="store_true", help="send one report (a full snapshot follows a 409) and exit")
    p.add_argument("--print", action="store_true", dest="print_report",
                   help="with --once: print the report sent as JSON on stdout")
    p.set_defaults(func=cmd_report)


def load_report_config(path: str) -> tuple[ReporterConfig, StoreConfig]:
    """The reporter's configuration and the store's from oca.toml (at start and on SIGHUP);
    raises ConfigError naming the file and key."""
    oca = load_oca_config(path)
    config = read_reporter_config(Section(oca.reporter, str(oca.path), "reporter"))
    if config.edge_ready_url is None and "edge_ready_url" not in oca.reporter:
        # The edge on this box: its admin port says whether it serves (RFC-free, ours: /readyz).
        host, port = oca.edge.admin.listen
        host = "127.0.0.1" if host in ("0.0.0.0", "") else ("::1" if host == "::" else host)
        config = replace(config, edge_ready_url=f"http://{_url_host(host)}:{port}/readyz")
    return config, oca.store


def cmd_report(args: argparse.Namespace) -> int:
    config, store_config = load_report_config(args.config)
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    return asyncio.run(_report(config, store_config, once=args.once, print_report=args.print_report,
                               path=args.config))


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def reload(reporter: Reporter, path: str, store_config: StoreConfig) -> bool:
    """SIGHUP: re-read `path`; swap a valid [reporter] into `reporter`, keep the running one otherwise."""
    try:
        config, new_store = load_report_config(path)
    except ConfigError as e:
        log.error("SIGHUP: configuration not reloaded, keeping the running one: %s", e)
        return False
    if new_store != store_config:
        log.warning("SIGHUP: [store] of %s changed: needs a restart, ignored", path)
    changed = reporter.reconfigure(config)
    log.info("SIGHUP: reloaded [reporter] from %s (changed: %s)", path,
             ", ".join(changed) if changed else "nothing")
    return True


async def _report(config: ReporterConfig, store_config: StoreConfig, *, once: bool, print_report: bool,
                  path: str) -> int:
    store = Store.open(store_config)
    try:
        async with aiohttp.ClientSession() as session:
            reporter = Reporter(config, store, session)
            if not once:
                await _run_until_stopped(reporter, path, store_config)
                return 0
            outcome = await reporter.run(once=once)
            if print_report and reporter.last_report is not None:
                print(json.dumps(reporter.last_report, indent=2))
            log.info("report %s", outcome)
            return 0 if outcome is ReportOutcome.ACCEPTED else 1
    finally:
        store.close()


async def _run_until_stopped(reporter: Reporter, path: str, store_config: StoreConfig) -> None:
    """Report every interval; SIGHUP reloads, SIGTERM/SIGINT stop."""
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    signals = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    loop.add_signal_handler(signal.SIGHUP, reload, reporter, path, store_config)
    running = asyncio.create_task(reporter.run())
    stop = asyncio.create_task(stopping.wait())
    try:
        await asyncio.wait({running, stop}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)
        stop.cancel()
        running.cancel()
        try:
            await running
        except asyncio.CancelledError:
            pass
    log.info("stopping on signal")
