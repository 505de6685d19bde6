"""`oca report` (long-running) as a process: SIGHUP reloads [reporter], a bad file keeps the running
configuration, SIGTERM stops it with exit code 0."""

from __future__ import annotations

import asyncio
import signal
import sys

from .conftest import wait_for, write_oca_toml


async def test_sighup_reloads_and_sigterm_stops(report_sink, tmp_path):
    path = write_oca_toml(tmp_path, report_sink.base_url,
                          'prefixes_static = ["192.0.2.0/24"]\nroute_table = 0')
    good = path.read_text()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "oca.cli", "report", "--config", str(path),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    stderr = bytearray()

    async def drain():
        while chunk := await proc.stderr.read(65536):
            stderr.extend(chunk)

    reader = asyncio.create_task(drain())

    def prefixes(report):
        return report["prefixes"]["ipv4"]

    def logged(text):
        async def seen():
            return text in stderr
        return seen

    def reports_with(v4, after=0, count=1):
        async def seen():
            return sum(prefixes(r) == v4 for r in report_sink.reports[after:]) >= count
        return seen

    try:
        await wait_for(reports_with(["192.0.2.0/24"]), timeout=10, what="a first report")

        path.write_text(good.replace('"192.0.2.0/24"', '"198.51.100.0/24"'))
        proc.send_signal(signal.SIGHUP)
        await wait_for(reports_with(["198.51.100.0/24"]), timeout=5, what="a report with the new prefixes")
        await wait_for(logged(b"SIGHUP: reloaded [reporter]"), timeout=5, what="reload log")
        assert b"changed: prefixes_static)" in stderr

        path.write_text(good.replace('"192.0.2.0/24"', '"not-a-prefix"'))
        proc.send_signal(signal.SIGHUP)
        await wait_for(logged(b"configuration not reloaded"), timeout=5, what="the error logged")
        assert b"prefixes_static[0]" in stderr and str(path).encode() in stderr
        mark = len(report_sink.reports)
        await wait_for(reports_with(["198.51.100.0/24"], after=mark, count=3), timeout=5,
                       what="reports going on with the previous prefixes")
        assert all(prefixes(r) == ["198.51.100.0/24"] for r in report_sink.reports[mark:])

        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), timeout=5) == 0
        await reader
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        reader.cancel()
