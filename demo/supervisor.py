"""A small process supervisor for the demo: one process group, readable prefixed logs, clean stop.

Each child runs in its own session (so a Ctrl-C on the terminal reaches only us) and its output is
copied line by line to our stderr behind a fixed-width name. Stopping sends SIGTERM to every child
(the daemons drain on it), waits up to a timeout, then SIGKILLs what is left.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TextIO

import aiohttp

COLOURS = ["36", "33", "35", "32", "34", "31", "96", "93"]


@dataclass
class Child:
    name: str
    argv: Sequence[str]
    proc: asyncio.subprocess.Process
    pump: asyncio.Task[None]
    expected_exit: bool = False


@dataclass
class ProcessGroup:
    out: TextIO = sys.stderr
    colour: bool = field(default_factory=lambda: sys.stderr.isatty())
    children: dict[str, Child] = field(default_factory=dict)
    width: int = 10

    def prefix(self, name: str) -> str:
        text = f"{name:<{self.width}}|"
        if not self.colour:
            return text
        code = COLOURS[sum(map(ord, name)) % len(COLOURS)]
        return f"\x1b[{code}m{text}\x1b[0m"

    def say(self, name: str, line: str) -> None:
        print(f"{self.prefix(name)} {line}", file=self.out, flush=True)

    async def _spawn(self, name: str, argv: Sequence[str], env: dict[str, str] | None) -> Child:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, stdin=asyncio.subprocess.DEVNULL,
            env={**os.environ, **(env or {})}, start_new_session=True)
        return Child(name, argv, proc, asyncio.create_task(self._pump(name, proc)))

    async def start(self, name: str, argv: Sequence[str], *, env: dict[str, str] | None = None) -> Child:
        """Start a long-running daemon, supervised under `name` (unique in the group)."""
        if name in self.children:
            raise ValueError(f"a daemon named {name!r} is already running")
        child = await self._spawn(name, argv, env)
        self.children[name] = child
        return child

    async def run(self, name: str, argv: Sequence[str], *, env: dict[str, str] | None = None,
                  timeout: float = 1800) -> int:
        """Run a command to completion with its output prefixed (not supervised); returns its exit code."""
        child = await self._spawn(name, argv, env)
        child.expected_exit = True
        try:
            code = await asyncio.wait_for(child.proc.wait(), timeout)
        except (TimeoutError, asyncio.CancelledError):
            await _terminate(child, 5.0)
            raise
        await child.pump
        return code

    async def _pump(self, name: str, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        pending = b""
        while chunk := await proc.stdout.read(65536):
            pending += chunk
            # progress bars redraw with \r: show each state as a line of its own
            *lines, pending = pending.replace(b"\r", b"\n").split(b"\n")
            for line in lines:
                if line.strip():
                    self.say(name, line.decode(errors="replace").rstrip())
        if pending.strip():
            self.say(name, pending.decode(errors="replace").rstrip())

    def exited(self) -> list[Child]:
        """Long-running children that died on their own."""
        return [c for c in self.children.values() if c.proc.returncode is not None and not c.expected_exit]

    async def stop(self, name: str, *, timeout: float = 15.0) -> int | None:
        child = self.children.get(name)
        if child is None:
            return None
        child.expected_exit = True
        await _terminate(child, timeout)
        return child.proc.returncode

    async def stop_all(self, *, timeout: float = 15.0) -> None:
        for child in self.children.values():
            child.expected_exit = True
        await asyncio.gather(*(_terminate(c, timeout) for c in self.children.values()))


async def _terminate(child: Child, timeout: float) -> None:
    if child.proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            child.proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(child.proc.wait(), timeout)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.proc.pid, signal.SIGKILL)
            await child.proc.wait()
    with contextlib.suppress(asyncio.CancelledError, TimeoutError):
        await asyncio.wait_for(child.pump, 5)


async def wait_http(url: str, *, timeout: float = 60.0, group: ProcessGroup | None = None,
                    name: str = "") -> None:
    """Wait until `url` answers 2xx; fail early if the process meant to serve it died."""
    deadline = asyncio.get_running_loop().time() + timeout
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
        while True:
            if group is not None and name in group.children and group.children[name].proc.returncode is not None:
                raise RuntimeError(f"{name} exited with code {group.children[name].proc.returncode} "
                                   f"before {url} answered")
            with contextlib.suppress(aiohttp.ClientError, TimeoutError, OSError):
                async with session.get(url) as resp:
                    if resp.status < 300:
                        return
            if asyncio.get_running_loop().time() > deadline:
                raise RuntimeError(f"{url} did not answer within {timeout:.0f} s")
            await asyncio.sleep(0.2)
