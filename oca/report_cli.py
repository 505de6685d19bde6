"""`oca report`: send the appliance report to the control plane every interval (or once).

    oca report --config /etc/oca/oca.toml [--once]

Reads ``[store]`` and ``[reporter]`` of oca.toml. With ``--once`` the exit code says how it went:
0 accepted, 1 not (control plane unreachable or the report rejected); 2 bad configuration.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
from dataclasses import replace
from typing import Any

import aiohttp

from oca.config import Section, load_oca_config
from oca.reporter import Reporter, ReportOutcome, read_reporter_config
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


def cmd_report(args: argparse.Namespace) -> int:
    oca = load_oca_config(args.config)
    config = read_reporter_config(Section(oca.reporter, str(oca.path), "reporter"))
    if config.edge_ready_url is None and "edge_ready_url" not in oca.reporter:
        # The edge on this box: its admin port says whether it serves (RFC-free, ours: /readyz).
        host, port = oca.edge.admin.listen
        host = "127.0.0.1" if host in ("0.0.0.0", "") else ("::1" if host == "::" else host)
        config = replace(config, edge_ready_url=f"http://{_url_host(host)}:{port}/readyz")
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    return asyncio.run(_report(config, oca.store, once=args.once, print_report=args.print_report))


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


async def _report(config: Any, store_config: Any, *, once: bool, print_report: bool) -> int:
    store = Store.open(store_config)
    try:
        async with aiohttp.ClientSession() as session:
            reporter = Reporter(config, store, session)
            outcome = await reporter.run(once=once)
            if print_report and reporter.last_report is not None:
                print(json.dumps(reporter.last_report, indent=2))
            log.info("report %s", outcome)
            return 0 if outcome is ReportOutcome.ACCEPTED else 1
    finally:
        store.close()
