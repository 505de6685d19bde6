"""`oca-fill run` as a process reloads its configuration on SIGHUP; a bad file is refused; --once ignores it."""

from __future__ import annotations

import asyncio
import signal
import sys

import aiohttp

from tests.integration.fill.conftest import (
    REPO,
    cli_env,
    item,
    make_files,
    manifest_doc,
    origin,
    put_files,
    wait_for,
    write_fill_config,
)
from tests.integration.fill.test_service import free_port, partial_sizes


class Service:
    """The service as a subprocess, its stderr (JSON log lines) collected as it comes."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[str] = []
        self.reader = asyncio.create_task(self._read())

    @classmethod
    async def start(cls, *args: str) -> Service:
        proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "fill.cli", "run", *args, cwd=REPO,
                                                    env=cli_env(), stdout=asyncio.subprocess.DEVNULL,
                                                    stderr=asyncio.subprocess.PIPE)
        return cls(proc)

    async def _read(self) -> None:
        while line := await self.proc.stderr.readline():
            self.lines.append(line.decode(errors="replace"))

    def logged(self, *parts: str) -> list[str]:
        return [line for line in self.lines if all(p in line for p in parts)]

    async def until_logged(self, *parts: str, timeout: float = 15.0) -> str:
        await wait_for(lambda: self.logged(*parts), timeout=timeout, what=f"a log line with {parts}")
        return self.logged(*parts)[0]

    @property
    def running(self) -> bool:
        return self.proc.returncode is None

    async def stop(self) -> int:
        if self.running:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return await asyncio.wait_for(self.proc.wait(), 15)
        finally:
            if self.proc.returncode is None:
                self.proc.kill()
                await self.proc.wait()
            await asyncio.wait_for(self.reader, 5)

    def log_tail(self) -> str:
        return "".join(self.lines[-30:])


async def scrape(port: int, name: str) -> float | None:
    async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/metrics") as resp:
        text = await resp.text()
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


async def test_sighup_reloads_and_refuses_a_bad_file(tmp_path, edge_factory, manifest_server):
    files = make_files(3, 200_000, seed=41)
    put_files(tmp_path / "origin", files)
    org = edge_factory(tmp_path / "origin")
    manifest_server.doc = manifest_doc([item(i + 1, f, [origin(org.url, f)]) for i, f in enumerate(files)])
    port = free_port()
    cfg = write_fill_config(tmp_path, manifest_server.url, extra=f'listen = "127.0.0.1:{port}"')
    first = cfg.read_text().replace('poll_interval = "1s"', 'poll_interval = "1h"')
    cfg.write_text(first)
    svc = await Service.start("--config", str(cfg))
    try:
        await svc.until_logged("fill run for manifest generation 1: complete")
        assert manifest_server.requests == 1                       # the next poll is an hour away
        assert await scrape(port, "oca_fill_rate_limit_bytes_per_second") == 0.0

        # A valid change: another token (the control plane refuses it), poll every second, a rate cap,
        # and a new admin port, which needs a restart and is ignored.
        other_port = free_port()
        cfg.write_text(first.replace('poll_interval = "1h"', 'poll_interval = "1s"')
                       .replace('token_file = "token"', 'token = "not-the-appliance-token"')
                       .replace('limit = "unlimited"', 'limit = "80Mbit"')
                       .replace(f"127.0.0.1:{port}", f"127.0.0.1:{other_port}"))
        svc.proc.send_signal(signal.SIGHUP)
        line = await svc.until_logged("SIGHUP: configuration reloaded", "oca-fill.toml")
        for key in ("control_plane.token", "control_plane.poll_interval", "rate"):
            assert key in line, line
        assert "not-the-appliance-token" not in line
        assert svc.logged("metrics.listen changed", "needs a restart")
        assert await scrape(port, "oca_fill_rate_limit_bytes_per_second") == 10_000_000   # at once
        # the hour-long wait was recomputed with the new poll interval, and the new token is sent
        await svc.until_logged("manifest rejected (control plane answered 403")
        assert svc.running, svc.log_tail()

        # An invalid file is refused, named with its key; the running configuration stays.
        cfg.write_text(first.replace('limit = "unlimited"', 'limit = "fast"'))
        svc.proc.send_signal(signal.SIGHUP)
        line = await svc.until_logged("SIGHUP: configuration rejected, keeping the running one")
        assert "oca-fill.toml" in line and "limit" in line, line
        seen = manifest_server.requests
        await wait_for(lambda: manifest_server.requests >= seen + 2, timeout=15,
                       what="polls going on with the running configuration (retry_interval 1 s)")
        assert len(svc.logged("manifest rejected (control plane answered 403")) >= 2
        assert await scrape(port, "oca_fill_rate_limit_bytes_per_second") == 10_000_000
        assert svc.running, svc.log_tail()
    finally:
        rc = await svc.stop()
    assert rc == 0, svc.log_tail()


async def test_sighup_is_ignored_by_a_once_run(tmp_path, edge_factory, manifest_server):
    files = make_files(3, 1_000_000, seed=43)
    put_files(tmp_path / "origin", files)
    org = edge_factory(tmp_path / "origin")
    manifest_server.doc = manifest_doc([item(i + 1, f, [origin(org.url, f)]) for i, f in enumerate(files)])
    cfg = write_fill_config(tmp_path, manifest_server.url, rate="16Mbit")   # 2 MB/s: ~1.5 s in all
    staging = tmp_path / "appliance" / "hdd0" / "staging"
    svc = await Service.start("--config", str(cfg), "--once")
    try:
        # a staging file exists from the start of a download (its bytes may come in one chunk)
        await wait_for(lambda: bool(partial_sizes(staging)), what="downloads under way")
        svc.proc.send_signal(signal.SIGHUP)
        rc = await asyncio.wait_for(svc.proc.wait(), 20)
    finally:
        await svc.stop()
    assert rc == 0, svc.log_tail()
    assert svc.logged("SIGHUP ignored"), svc.log_tail()
    assert svc.logged("fill run for manifest generation 1: complete")
