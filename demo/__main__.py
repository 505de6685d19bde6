"""`make run`: a whole CDN on one machine.

Starts the control plane, steering, an origin and two appliances (one at an exchange point, one
inside an "ISP"), each appliance with its reporter; ingests a generated sample title, licenses it,
makes it popular, fills both appliances, then prints the URLs to play it and a last line
``ready: {...}`` with the same URLs as JSON. Stays in the foreground; Ctrl-C (or SIGTERM) stops
everything cleanly and leaves the state directory for inspection. A second run reuses the state
(no re-encode when the sample is unchanged).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import secrets
import signal
import sys
from pathlib import Path

from demo import steps
from demo.layout import Layout
from demo.supervisor import ProcessGroup


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="make run", description=__doc__.split("\n\n")[0])
    p.add_argument("--state-dir", default="run", help="where configs, databases, stores and logs go (default ./run)")
    p.add_argument("--port-base", type=int, default=8400,
                   help="first of the ports the demo uses (it uses 8 from there; default 8400)")
    p.add_argument("--duration", type=float, default=60.0, help="length of the sample title in seconds (default 60)")
    return p.parse_args(argv)


async def run(args: argparse.Namespace) -> int:
    layout = Layout(Path(args.state_dir).resolve(), args.port_base)
    group = ProcessGroup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    setup = asyncio.create_task(bring_up(layout, group, args))
    waiter = asyncio.create_task(stop.wait())
    try:
        done, _ = await asyncio.wait({setup, waiter}, return_when=asyncio.FIRST_COMPLETED)
        if setup in done:
            ready = setup.result()
            print_ready(ready)
            await watch(group, stop)
    except steps.DemoError as e:
        group.say("demo", f"error: {e}")
        return 1
    finally:
        for task in (setup, waiter):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        group.say("demo", "stopping: every daemon drains, then exits")
        await group.stop_all()
        group.say("demo", f"stopped; state kept in {layout.root} (make clean-run removes it)")
    return 0


async def bring_up(layout: Layout, group: ProcessGroup, args: argparse.Namespace) -> dict[str, object]:
    layout.root.mkdir(parents=True, exist_ok=True)
    steps.write_static_files(layout, secret=secrets.token_urlsafe(32))
    await steps.start_control_plane(layout, group)
    await steps.register_fleet(layout, group)
    await steps.start_steering(layout, group)
    await steps.ingest_sample(layout, group, duration=args.duration)
    # The origin indexes its directory when it starts, so it starts once the packaged files are there.
    await steps.start_edges(layout, group)
    await steps.start_reporters(layout, group)
    await steps.license_and_popularise(layout, group)
    await steps.fill_appliances(layout, group)
    await steps.wait_for_steering(layout, group)
    steps.write_pids(layout, group)
    return steps.ready_document(layout)


def print_ready(ready: dict[str, object]) -> None:
    lines = [
        "",
        "The CDN is up. Open the player page:",
        f"  player page     {ready['player']}",
        f"  DASH manifest   {ready['dash']}",
        f"  HLS manifest    {ready['hls']}",
        f"  steering        {ready['steering']}",
        "  metrics         " + "\n                  ".join(ready["metrics"].values()),  # type: ignore[union-attr]
        "Ctrl-C stops everything.",
        "",
    ]
    print("\n".join(lines), flush=True)
    print("ready: " + json.dumps(ready), flush=True)


async def watch(group: ProcessGroup, stop: asyncio.Event) -> None:
    """Wait for Ctrl-C; report a daemon that dies on its own (and keep the others up)."""
    reported: set[str] = set()
    while not stop.is_set():
        for child in group.exited():
            if child.name not in reported:
                reported.add(child.name)
                group.say("demo", f"{child.name} exited with code {child.proc.returncode}")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 1.0)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        import uvloop
        return uvloop.run(run(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
