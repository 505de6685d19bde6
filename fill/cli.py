"""`oca-fill`: the fill agent's command line.

    oca-fill run  --config /etc/oca/oca-fill.toml [--once]   # service (window logic), or one run now
    oca-fill plan --config /etc/oca/oca-fill.toml            # fetch the manifest, print the plan, change nothing

Exit codes: 0 the run completed; 1 some items failed or the run was stopped early (partials resume next
time); 2 configuration error; 3 no usable manifest (control plane unreachable or answer rejected; the
store was left as it was). SIGTERM/SIGINT: stop starting downloads; in-flight ones may finish for
`fetch.drain_timeout`, then pause; a second signal pauses at once. SIGHUP (service): reload the
configuration file, keeping the running one if the new one is invalid; with --once it is ignored.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Iterator

import aiohttp
from aiohttp import web
from prometheus_client import CollectorRegistry

from fill.agent import Agent, CycleStatus, inventory
from fill.config import FillConfig, read_fill_config
from fill.controlplane import Fresh, ManifestCache, NotModified, fetch_manifest
from fill.fetcher import client_session
from fill.metrics import FillMetrics
from fill.planner import DropPartial, Evict, Fetch, Move, plan
from fill.progress import human_bytes
from oca.applog import setup_json_logging
from oca.config import EXIT_CONFIG, ConfigError
from oca.store import Store, StoreError

log = logging.getLogger("oca.fill")
EXIT_OK, EXIT_INCOMPLETE, EXIT_NO_MANIFEST = 0, 1, 3


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="oca-fill", description="OCA fill agent: fill this appliance's store "
                                     "from peers and origin, following the control plane's fill manifest.")
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING, ERROR (default INFO)")
    parser.add_argument("--log-format", choices=("auto", "json", "text"), default="auto",
                        help="auto: text on a terminal, JSON lines otherwise")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = sub.add_parser("run", help="fill in the window (service), or once now with --once")
    run.add_argument("--config", required=True, help="oca-fill.toml")
    run.add_argument("--once", action="store_true", help="run once now, ignoring the window, then exit")
    show = sub.add_parser("plan", help="fetch the manifest and print what a run would do; change nothing")
    show.add_argument("--config", required=True, help="oca-fill.toml")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    tty = sys.stderr.isatty()
    if args.log_format == "json" or (args.log_format == "auto" and not tty):
        setup_json_logging(args.log_level, daemon="oca-fill")
    else:
        logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = read_fill_config(args.config)
    except ConfigError as e:
        print(f"oca-fill: {e}", file=sys.stderr)
        return EXIT_CONFIG
    try:
        with _open_store(config) as store:
            if args.command == "plan":
                return _run(_plan(config, store))
            return _run(_fill(config, store, once=args.once, tty=tty))
    except StoreError as e:
        print(f"oca-fill: store: {e}", file=sys.stderr)
        return EXIT_CONFIG
    except KeyboardInterrupt:
        return 130


@contextlib.contextmanager
def _open_store(config: FillConfig) -> Iterator[Store]:
    # cleanup=True: the fill agent is the store's writer; it clears what a crash left (not young partials)
    store = Store.open(config.store, cleanup=True)
    try:
        yield store
    finally:
        store.close()


def _run(coro) -> int:
    try:
        import uvloop
    except ImportError:     # pragma: no cover - uvloop is a dependency; plain asyncio works too
        return asyncio.run(coro)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)


async def _fill(config: FillConfig, store: Store, *, once: bool, tty: bool) -> int:
    metrics = FillMetrics(CollectorRegistry())
    async with client_session() as session:
        agent = Agent(config, store, session, metrics, tty=tty)
        _install_signals(agent, once=once)
        admin = await _start_admin(metrics, config) if (config.metrics_listen and not once) else None
        try:
            if once:
                result = await agent.run_once()
                return {CycleStatus.COMPLETE: EXIT_OK, CycleStatus.INCOMPLETE: EXIT_INCOMPLETE}.get(
                    result.status, EXIT_NO_MANIFEST)
            await agent.serve()
            return EXIT_OK
        finally:
            if admin is not None:
                await admin.cleanup()


def _install_signals(agent: Agent, *, once: bool) -> None:
    loop = asyncio.get_running_loop()

    def on_signal(signame: str) -> None:
        if agent.stopping:
            log.info("%s again: pausing in-flight downloads now", signame)
            agent.pause()
            return
        drain_timeout = agent.config.fetch.drain_timeout      # the reloaded one, if SIGHUP changed it
        log.info("%s: finishing in-flight downloads for up to %.0fs", signame, drain_timeout)
        agent.stop()
        loop.call_later(drain_timeout, agent.pause)

    def on_hup() -> None:
        if once:
            log.info("SIGHUP ignored: a --once run keeps the configuration it started with")
        else:
            reload_config(agent)

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig.name)
    loop.add_signal_handler(signal.SIGHUP, on_hup)


def reload_config(agent: Agent) -> bool:
    """SIGHUP: re-read the agent's configuration file and swap it in; an invalid one is logged and ignored."""
    path = agent.config.file
    try:
        new = read_fill_config(path)
    except ConfigError as e:
        log.error("SIGHUP: configuration rejected, keeping the running one: %s", e)
        return False
    changed, restart = agent.reload(new)
    for key in restart:
        log.warning("SIGHUP: %s changed in %s: needs a restart; keeping the running one", key, path)
    log.info("SIGHUP: configuration reloaded from %s: %s", path,
             ("changed " + ", ".join(changed)) if changed else "no change that applies")
    return True


async def _start_admin(metrics: FillMetrics, config: FillConfig) -> web.AppRunner:
    runner = web.AppRunner(metrics.admin_app(), access_log=None)
    await runner.setup()
    host, port = config.metrics_listen
    await web.TCPSite(runner, host, port).start()
    log.info("metrics on http://%s:%d/metrics", host, port)
    return runner


async def _plan(config: FillConfig, store: Store) -> int:
    async with aiohttp.ClientSession() as session:
        fetched = await fetch_manifest(session, config.control_plane,
                                       ManifestCache(config.state_dir, config.control_plane.appliance_id))
    if not isinstance(fetched, Fresh | NotModified):
        print(f"oca-fill: no usable manifest: {fetched.reason}", file=sys.stderr)
        return EXIT_NO_MANIFEST
    held, capacity, staged = inventory(store)
    p = plan(fetched.manifest, held, capacity, default_tier=store.config.default_tier, staged=staged)
    for a in p.actions:
        match a:
            case Evict():
                print(f"evict  {a.key}  {a.tier}  {human_bytes(a.size)}  ({a.reason.value})")
            case DropPartial():
                print(f"drop   {a.key}  partial download, {human_bytes(a.size)}  (not wanted)")
            case Move():
                print(f"move   {a.key}  {a.from_tier} -> {a.to_tier}  {human_bytes(a.size)}")
            case Fetch():
                print(f"fetch  {a.key}  {a.tier}  {human_bytes(a.size)}  rank {a.item.rank}")
    for s in p.skipped:
        print(f"skip   {s.key}  {s.tier}  {human_bytes(s.size)}  ({s.reason.value})")
    print(f"manifest generation {fetched.manifest.generation}: {len(p.of(Evict))} evictions, {len(p.of(Move))} "
          f"moves, {len(p.of(Fetch))} downloads ({human_bytes(p.fetch_bytes)}), {len(p.skipped)} skipped, "
          f"{p.kept} kept")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
