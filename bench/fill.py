"""Fill agent throughput and rate-cap accuracy: ``python -m bench.fill`` (``make bench-fill``).

One local origin (our edge in open mode, ``oca serve --root``, 2 workers) serves 2 GiB of random files
(32 × 64 MiB) from tmpfs (``--workdir``, default /dev/shm). In the same run:

- ``curl``: one plain ``curl`` process downloads every file sequentially to the work dir (no hashing,
  no fsync);
- ``fill``: the fill agent, cap off, fills a real store with the same files: SHA-256 while streaming,
  fsync, atomic publish — the whole ``run_once`` (manifest, plan, downloads, publish) is timed;
  both are run twice, alternating, and the best of each is compared (target: fill ≥ 0.9 × curl);
- ``disk``: one more uncapped fill with the store on a real disk (``--disk-dir``), informational: the
  agent fsyncs every file before publishing and curl does not, so on disk the disk's write speed rules;
- ``cap``: the agent with the cap at 200 Mbit/s fills a fresh store with 512 MiB (≈ 21 s: the
  measurement window, shorter than the minute the cap is specified over) → achieved rate vs the cap
  (target ±5 %), measured as bytes received / duration of the run, start-up included.

A readable table, then one JSON object on the last line.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from aiohttp import web
from prometheus_client import CollectorRegistry

REPO = Path(__file__).resolve().parents[1]
MIB = 1024 * 1024
TOKEN = "bench-token"


def make_files(root: Path, count: int, size: int) -> list[tuple[str, int, str]]:
    files = []
    for i in range(count):
        key = f"t{i}/avc-1080p.mp4"
        path = root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        h = hashlib.sha256()
        with open(path, "wb") as f:
            for _ in range(size // MIB):
                block = os.urandom(MIB)
                h.update(block)
                f.write(block)
        files.append((key, size, h.hexdigest()))
    return files


class Origin:
    def __init__(self, root: Path) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "oca.cli", "serve", "--root", str(root), "--listen",
                                      "127.0.0.1:0", "--workers", "2"], stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True, cwd=REPO)
        self.url = "http://" + json.loads(self.proc.stdout.readline())["listen"]

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        self.proc.stdout.close()


def cpu_seconds(who: int) -> float:
    r = resource.getrusage(who)
    return r.ru_utime + r.ru_stime


def curl_all(url: str, files: list, out: Path) -> tuple[float, float]:
    """(wall seconds, CPU seconds of curl)."""
    out.mkdir(parents=True, exist_ok=True)
    args = ["curl", "-s", "--fail"]
    for i, (key, _, _) in enumerate(files):
        args += [f"{url}/{key}", "-o", str(out / str(i))]
    cpu0 = cpu_seconds(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(args, check=True)
    elapsed = time.perf_counter() - started
    cpu = cpu_seconds(resource.RUSAGE_CHILDREN) - cpu0
    shutil.rmtree(out)
    subprocess.run(["sync"], check=True)
    return elapsed, cpu


def appliance(work: Path, name: str, cp_url: str, rate: str, concurrency: int, capacity: int) -> Path:
    root = work / name
    (root / "hdd0").mkdir(parents=True)
    (root / "oca.toml").write_text(f'[store]\nindex_path = "index"\nmap_size = "64MiB"\n'
                                   f'[store.tiers.hdd]\ndisks = [{{path = "hdd0", capacity = {capacity}}}]\n')
    (root / "oca-fill.toml").write_text(f"""
store_config = "oca.toml"
state_dir = "state"
[control_plane]
url = "{cp_url}"
appliance_id = "bench-1"
token = "{TOKEN}"
[window]
enabled = false
[rate]
limit = "{rate}"
[fetch]
concurrency = {concurrency}
""")
    from oca.config import load_toml, read_store_config
    from oca.store import init_disks

    init_disks(read_store_config(load_toml(root / "oca.toml")))
    return root / "oca-fill.toml"


async def manifest_server(doc: dict) -> tuple[web.AppRunner, str]:
    async def handle(_: web.Request) -> web.Response:
        return web.json_response(doc, headers={"ETag": f'"{doc["generation"]}"'})
    app = web.Application()
    app.router.add_get("/api/v1/appliances/{id}/fill-manifest", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"


async def fill(config_path: Path) -> tuple[float, float, int, float]:
    """One agent run: (elapsed, throttle-granted bytes, received bytes, CPU seconds of this process)."""
    from fill.agent import Agent, CycleStatus
    from fill.config import read_fill_config
    from fill.fetcher import client_session
    from fill.metrics import FillMetrics
    from oca.store import Store

    config = read_fill_config(config_path)
    store = Store.open(config.store, cleanup=True)
    try:
        async with client_session() as session:
            agent = Agent(config, store, session, FillMetrics(CollectorRegistry()), tty=False)
            cpu0 = cpu_seconds(resource.RUSAGE_SELF)
            started = time.perf_counter()
            result = await agent.run_once()
            elapsed = time.perf_counter() - started
            cpu = cpu_seconds(resource.RUSAGE_SELF) - cpu0
        if result.status is not CycleStatus.COMPLETE:
            raise SystemExit(f"fill did not complete: {result.summary.lines() if result.summary else result}")
        return elapsed, agent.throttle.granted, sum(result.summary.received.values()), cpu
    finally:
        store.close()


async def bench(args: argparse.Namespace) -> dict:
    work = Path(tempfile.mkdtemp(prefix="bench-fill-", dir=args.workdir))
    origin = None
    try:
        size = args.file_mib * MIB
        files = make_files(work / "origin", args.files, size)
        total = size * len(files)
        origin = Origin(work / "origin")
        items = [{"rank": i + 1, "key": k, "size": s, "sha256": h, "tier": "hdd",
                  "sources": [{"kind": "origin", "url": f"{origin.url}/{k}"}]} for i, (k, s, h) in enumerate(files)]
        doc = {"version": 1, "appliance_id": "bench-1", "generation": 1, "generated_at": "2026-11-25T00:00:00Z",
               "items": items}
        runner, cp_url = await manifest_server(doc)
        curl_runs, fill_runs = [], []
        for rep in range(args.repeat):
            curl_runs.append(await asyncio.to_thread(curl_all, origin.url, files, work / "curl"))
            cfg = appliance(work, f"fill{rep}", cp_url, "unlimited", args.concurrency, total * 2)
            elapsed, _, _, cpu = await fill(cfg)
            fill_runs.append((elapsed, cpu))
            shutil.rmtree(cfg.parent)
            await asyncio.to_thread(subprocess.run, ["sync"], check=True)
        disk_s = None
        if args.disk_dir:
            disk_work = Path(tempfile.mkdtemp(prefix="bench-fill-disk-", dir=args.disk_dir))
            try:
                cfg = appliance(disk_work, "fill", cp_url, "unlimited", args.concurrency, total * 2)
                disk_s = (await fill(cfg))[0]
            finally:
                shutil.rmtree(disk_work, ignore_errors=True)
        cap_files = max(1, min(len(files), round(args.cap_mib / args.file_mib)))
        doc["items"] = items[:cap_files]
        doc["generation"] = 2
        cfg = appliance(work, "cap", cp_url, f"{args.cap_mbit}Mbit", args.concurrency, total * 2)
        cap_elapsed, granted, received, _ = await fill(cfg)
        await runner.cleanup()
    finally:
        if origin is not None:
            origin.stop()
        shutil.rmtree(work, ignore_errors=True)
    cap_bps = args.cap_mbit * 1e6
    achieved_bps = received * 8 / cap_elapsed
    curl_best, fill_best = min(t for t, _ in curl_runs), min(t for t, _ in fill_runs)
    curl_times, fill_times = [t for t, _ in curl_runs], [t for t, _ in fill_runs]
    gib = total / 1024**3
    return {
        "bench": "fill", "files": len(files), "bytes": total, "concurrency": args.concurrency,
        "curl_s": round(curl_best, 3), "curl_MBps": round(total / curl_best / 1e6, 1),
        "fill_s": round(fill_best, 3), "fill_MBps": round(total / fill_best / 1e6, 1),
        "ratio_fill_vs_curl": round(curl_best / fill_best, 3), "ratio_target": 0.9,
        "curl_runs_s": [round(t, 3) for t in curl_times], "fill_runs_s": [round(t, 3) for t in fill_times],
        "curl_cpu_s_per_gib": round(min(c for _, c in curl_runs) / gib, 3),
        "fill_cpu_s_per_gib": round(min(c for _, c in fill_runs) / gib, 3),
        "fill_disk_s": round(disk_s, 3) if disk_s else None,
        "fill_disk_MBps": round(total / disk_s / 1e6, 1) if disk_s else None,
        "cap_bps": cap_bps, "cap_bytes": received, "cap_window_s": round(cap_elapsed, 2),
        "cap_achieved_bps": round(achieved_bps), "cap_error_pct": round((achieved_bps / cap_bps - 1) * 100, 2),
        "cap_throttle_granted": granted, "cap_target_pct": 5.0,
    }


def table(r: dict) -> str:
    rows = [
        ("curl, sequential, one connection", f"{r['curl_s']:.2f} s", f"{r['curl_MBps']:.0f} MB/s", ""),
        (f"oca-fill, cap off, {r['concurrency']} streams, sha256+fsync+publish", f"{r['fill_s']:.2f} s",
         f"{r['fill_MBps']:.0f} MB/s", f"{r['ratio_fill_vs_curl']:.2f}x curl (target >= 0.9x)"),
        *([("oca-fill, cap off, store on disk (fsync bound)", f"{r['fill_disk_s']:.2f} s",
             f"{r['fill_disk_MBps']:.0f} MB/s", f"{r['curl_s'] / r['fill_disk_s']:.2f}x curl (informational)")]
          if r["fill_disk_s"] else []),
        (f"oca-fill, cap {r['cap_bps'] / 1e6:.0f} Mbit/s, {r['cap_bytes'] / MIB:.0f} MiB",
         f"{r['cap_window_s']:.2f} s", f"{r['cap_achieved_bps'] / 1e6:.1f} Mbit/s",
         f"{r['cap_error_pct']:+.2f}% vs cap (target +/-5%)"),
    ]
    w = max(len(row[0]) for row in rows)
    lines = [f"fill bench: {r['files']} files, {r['bytes'] / MIB / 1024:.2f} GiB, best of "
             f"{len(r['fill_runs_s'])} alternating runs"]
    lines += [f"  {a:<{w}}  {b:>9}  {c:>14}  {d}" for a, b, c, d in rows]
    lines.append(f"  CPU per GiB: curl {r['curl_cpu_s_per_gib']:.2f} s, oca-fill {r['fill_cpu_s_per_gib']:.2f} s "
                 "(SHA-256, streaming, threads; the origin's CPU is not counted for either)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.fill", description=__doc__.split("\n")[0])
    p.add_argument("--files", type=int, default=32, help="number of files (default 32)")
    p.add_argument("--file-mib", type=int, default=64, help="size of each file in MiB (default 64)")
    p.add_argument("--concurrency", type=int, default=4, help="fill.fetch.concurrency (default 4)")
    p.add_argument("--repeat", type=int, default=2, help="alternating curl/fill repetitions (default 2)")
    p.add_argument("--cap-mbit", type=float, default=200, help="rate cap for the cap run (default 200)")
    p.add_argument("--cap-mib", type=int, default=512, help="bytes to fill in the cap run (default 512 MiB)")
    p.add_argument("--workdir", default="/dev/shm" if os.path.isdir("/dev/shm") else None,
                   help="origin files, curl output and the fill's store (default /dev/shm: both clients write "
                        "to memory, so the comparison is of the clients, not of the disk)")
    p.add_argument("--disk-dir", default=tempfile.gettempdir(),
                   help="one more uncapped fill with the store here, on a real disk (fsync bound); '' to skip")
    args = p.parse_args(argv)
    try:
        import uvloop
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            result = runner.run(bench(args))
    except ImportError:
        result = asyncio.run(bench(args))
    print(table(result))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
