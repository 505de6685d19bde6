"""Control-plane bench: `python -m bench.control` (or `make bench-control`).

1. Heartbeat ingest on ONE server process (pinned to core 0; wrk with one thread pinned to core 1):
   a bare aiohttp handler that accepts the same POST and answers 204 (the reference, same run),
   then `oca-control serve` on SQLite, then on PostgreSQL (a throwaway cluster). After each run the
   server is stopped with SIGTERM and the flushed heartbeat count is checked against what wrk got
   204 for: nothing may be lost. Then the same per box: `server.workers` = one per core, the
   processes free to use every core (wrk's included), against the ≥ 20,000 heartbeats/s target.
2. Fill manifests for 17,000 titles × 5 renditions and 1,000 appliances: the pure planner and the
   full render (rank, place, sources, sign every peer URL, JSON) per appliance; then the HTTP
   endpoint on SQLite end to end.

Prints a readable table, then one line with a JSON object of the figures. Options: ``--seconds N``
(per wrk run, default 6), ``--connections N`` (default 64), ``--quick`` (shorter, smaller).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

HB_BODY = '{"positionMs":120000,"bufferHealth":18.5,"bitrate":3000000,"deviceId":"bench-device"}'
N_TITLES_HB = 100
RENDITIONS = [("avc-360p", 0.35), ("avc-720p", 1.2), ("avc-1080p", 2.6), ("hevc-2160p", 6.0), ("aac-128k", 0.1)]
GB = 10**9

BARE_SERVER = textwrap.dedent("""
    import sys, uvloop
    from aiohttp import web
    async def handler(request):
        await request.read()
        return web.Response(status=204)
    app = web.Application()
    app.router.add_post("/api/v1/playback/{title_id}/heartbeat", handler)
    uvloop.install()
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
""")


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(port: int, timeout: float = 30.0) -> None:
    import socket
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port}")


def wrk_script(tmp: Path) -> Path:
    script = tmp / "heartbeat.lua"
    script.write_text(textwrap.dedent(f"""
        wrk.method = "POST"
        wrk.body = '{HB_BODY}'
        wrk.headers["Content-Type"] = "application/json"
        local n = 0
        request = function()
          n = n + 1
          return wrk.format(nil, "/api/v1/playback/t" .. (n % {N_TITLES_HB}) .. "/heartbeat")
        end
    """))
    return script


def run_wrk(port: int, script: Path, seconds: float, connections: int) -> dict:
    out = subprocess.run(["taskset", "-c", "1", "wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--latency",
                          "-s", str(script), f"http://127.0.0.1:{port}/"],
                         capture_output=True, text=True, check=True).stdout
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)\b", out)
    return {"requests": requests, "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
            "non_2xx": int(non2xx.group(1)) if non2xx else 0,
            "socket_errors": sum(map(int, sock.groups())) if sock else 0,
            "p99_ms": float(p99.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99.group(2)] if p99 else 0.0}


def pinned(argv: list[str], cpus: str = "0", **kw) -> subprocess.Popen:
    return subprocess.Popen(["taskset", "-c", cpus, *argv], **kw)


def stop(proc: subprocess.Popen) -> int:
    proc.send_signal(signal.SIGTERM)
    return proc.wait(60)


# -- 1. heartbeats -------------------------------------------------------------------------------

def bench_bare(tmp: Path, script: Path, seconds: float, connections: int) -> dict:
    port = free_port()
    proc = pinned([sys.executable, "-c", BARE_SERVER, str(port)])
    try:
        wait_http(port)
        run_wrk(port, script, 1, connections)            # warm-up
        return run_wrk(port, script, seconds, connections)
    finally:
        stop(proc)


def control_config(tmp: Path, url: str, port: int, workers: int = 1) -> Path:
    token = tmp / "operator.token"
    token.write_text("bench-operator-token-0123456789\n")
    path = tmp / f"control-{port}.toml"
    path.write_text(textwrap.dedent(f"""
        [server]
        listen = "127.0.0.1:{port}"
        access_log = false
        workers = {workers}
        [database]
        url = "{url}"
        migrate_on_start = true
        [auth]
        operator_token_files = ["{token}"]
        [telemetry]
        flush_interval = "1s"
        max_pending = 2000000
        [log]
        level = "warning"
    """))
    return path


def seed_titles(url: str) -> None:
    from control_plane.catalog import Title
    from control_plane.db import catalog, migrate
    from control_plane.db.engine import create_engine

    async def go():
        engine = create_engine(url, pool_size=1)
        try:
            await migrate.upgrade(engine)
            async with engine.begin() as conn:
                for i in range(N_TITLES_HB):
                    await catalog.insert_title(conn, Title(f"t{i}", "movie", f"Title {i}", "en"), time.time())
        finally:
            await engine.dispose()
    asyncio.run(go())


def flushed_heartbeats(url: str) -> int:
    from sqlalchemy import func, select

    from control_plane.db.engine import create_engine
    from control_plane.db.schema import playback_stats

    async def go():
        engine = create_engine(url, pool_size=1)
        try:
            async with engine.connect() as conn:
                return int((await conn.execute(select(func.coalesce(func.sum(playback_stats.c.heartbeats), 0))))
                           .scalar_one())
        finally:
            await engine.dispose()
    return asyncio.run(go())


def bench_control(tmp: Path, url: str, script: Path, seconds: float, connections: int, workers: int = 1) -> dict:
    """One worker pinned to core 0; with `workers` > 1 the whole box (every core, wrk's included)."""
    seed_titles(url)
    port = free_port()
    config = control_config(tmp, url, port, workers)
    cpus = "0" if workers == 1 else ",".join(map(str, sorted(os.sched_getaffinity(0))))
    proc = pinned([sys.executable, "-m", "control_plane.cli", "serve", "--config", str(config)], cpus,
                  stdout=subprocess.DEVNULL)
    try:
        wait_http(port)
        warm = run_wrk(port, script, 1, connections)
        result = run_wrk(port, script, seconds, connections)
    finally:
        code = stop(proc)
    accepted = (warm["requests"] - warm["non_2xx"]) + (result["requests"] - result["non_2xx"])
    flushed = flushed_heartbeats(url)
    # wrk may count a request in flight at its deadline that the server still answered: allow that many.
    result.update(exit_code=code, accepted=accepted, flushed=flushed,
                  nothing_lost=0 <= flushed - accepted <= 2 * connections)
    return result


def bench_ingest_core(url: str, records: int) -> dict:
    """The path behind HTTP, in process on one core: JSON parse + validation + country-less buffer add,
    flushed to SQL every 50,000 records (the default flush_batch). Records per second."""
    from control_plane.db import migrate
    from control_plane.db import telemetry as telemetry_repo
    from control_plane.db.engine import create_engine
    from control_plane.telemetry import TelemetryBuffer, parse_heartbeat

    body = HB_BODY.encode()
    regions = ["DE", "FR", "NL", "GB", "PL", "US", "BR", "JP", "IN", "unknown"]

    async def go() -> tuple[float, float]:
        engine = create_engine(url, pool_size=1)
        try:
            await migrate.upgrade(engine)
            buffer = TelemetryBuffer(max_pending=10**9, max_keys=10**7, bucket=60, retry_after=1, clock=time.time)
            flush_s = 0.0
            t0 = time.perf_counter()
            for i in range(records):
                buffer.add_heartbeat(f"t{i % 1000}", regions[i % len(regions)], parse_heartbeat(json.loads(body)))
                if buffer.waiting() >= 50_000 or i == records - 1:
                    f0 = time.perf_counter()
                    batch = buffer.take()
                    async with engine.begin() as conn:
                        await telemetry_repo.write_batch(conn, batch, time.time(), half_life=3 * 86400,
                                                         heartbeat_weight=0.0)
                    buffer.done(batch)
                    flush_s += time.perf_counter() - f0
            return time.perf_counter() - t0, flush_s
        finally:
            await engine.dispose()
    total, flush = asyncio.run(go())
    return {"records": records, "per_s": round(records / total), "flush_share": round(flush / total, 3)}


# -- 2. fill manifests -----------------------------------------------------------------------------

def synthetic_catalog(n_titles: int, rng: random.Random):
    from control_plane.fillplan import FileSpec
    files = {}
    for t in range(n_titles):
        tid = f"t{t}"
        scale = rng.uniform(0.5, 2.0)                           # duration-ish
        files[tid] = [FileSpec(f"{tid}/{name}.mp4", tid, int(gb * scale * GB), f"{t:064x}")
                      for name, gb in RENDITIONS]
    return files


def synthetic_fleet(n_appliances: int, n_regions: int, held: int, ranked: list[str], files, rng: random.Random):
    from control_plane.fillplan import SourceBox
    boxes = []
    for a in range(n_appliances):
        region = f"region-{a % n_regions}"
        top = ranked[: held // len(RENDITIONS)]
        keys = frozenset(f.key for t in top for f in files[t])
        boxes.append(SourceBox(f"oca-{a}", f"site-{a % (n_regions * 5)}", region, rng.random(),
                               f"http://10.{a // 250}.{a % 250}.1:8080", keys))
    origins = tuple(SourceBox(f"origin-{i}", "origin", "region-0", 0.1 * i, f"http://origin-{i}:8080")
                    for i in range(2))
    return boxes, origins


def bench_fill_pure(n_titles: int, n_appliances: int, samples: int, held: int) -> dict:
    import orjson

    from control_plane import fillmanifest
    from control_plane.fillplan import Fleet, SourceIndex, Target, plan_fill, rank_titles
    from oca.tokens import sign_query

    rng = random.Random(5)
    files = synthetic_catalog(n_titles, rng)
    titles = list(files)
    scores = {t: 1.0 / (i + 1) ** 0.9 for i, t in enumerate(rng.sample(titles, len(titles)))}   # Zipf-like
    ranked = rank_titles(scores, titles, titles)
    boxes, origins = synthetic_fleet(n_appliances, 20, held, ranked, files, rng)
    licensed = frozenset(titles)
    secret = "b" * 40

    def signer(path, expires):
        return sign_query(path, "k1", secret, expires)

    plan_ms, render_ms, index_ms, items_n, size_mb = [], [], [], [], []
    for box in rng.sample(boxes, samples):
        target = Target(box.id, box.site, box.region, 100 * 10**12, 200 * 10**12)   # reference: 100 TB + 200 TB
        t0 = time.perf_counter()
        plan = plan_fill(target, scores, licensed, files)
        t1 = time.perf_counter()
        index = SourceIndex(target, Fleet(tuple(b for b in boxes if b.region == box.region), origins), 3)
        t2 = time.perf_counter()
        fillmanifest.fingerprint(plan, index, peers_allowed=True)
        items = fillmanifest.render_items(plan, index, signer=signer, expires=int(time.time()) + 86400)
        body = orjson.dumps(fillmanifest.document(box.id, 1, "2027-01-01T00:00:00Z", items))
        t3 = time.perf_counter()
        plan_ms.append((t1 - t0) * 1000)
        index_ms.append((t2 - t1) * 1000)
        render_ms.append((t3 - t2) * 1000)
        items_n.append(len(plan.placements))
        size_mb.append(len(body) / 1e6)
    per = statistics.median(p + i + r for p, i, r in zip(plan_ms, index_ms, render_ms, strict=True))
    return {"titles": n_titles, "renditions": n_titles * len(RENDITIONS), "appliances": n_appliances,
            "keys_held_per_appliance": held, "sampled_appliances": samples,
            "plan_ms_median": round(statistics.median(plan_ms), 2),
            "source_index_ms_median": round(statistics.median(index_ms), 2),
            "render_sign_json_ms_median": round(statistics.median(render_ms), 2),
            "manifest_ms_median": round(per, 2), "items_median": int(statistics.median(items_n)),
            "manifest_mb_median": round(statistics.median(size_mb), 2),
            "all_appliances_s_one_core": round(per * n_appliances / 1000, 1)}


def bench_fill_http(tmp: Path, n_titles: int, n_appliances: int, held: int, samples: int) -> dict:
    """The real endpoint on SQLite: catalog, licences, popularity and inventories loaded through the
    repository layer, manifests fetched over HTTP from a server pinned to one core."""
    from control_plane import credentials
    from control_plane.catalog import Rendition
    from control_plane.db import catalog, fleet, migrate, popularity
    from control_plane.db.engine import create_engine
    from control_plane.db.schema import licences, titles
    from control_plane.fleet import ApplianceSpec, FullInventory, Item, Report

    url = f"sqlite:///{tmp / 'fill.db'}"
    rng = random.Random(9)
    tokens: dict[str, str] = {}

    async def load():
        engine = create_engine(url, pool_size=1)
        now = time.time()
        try:
            await migrate.upgrade(engine)
            async with engine.begin() as conn:
                await conn.execute(titles.insert(), [
                    {"id": f"t{t}", "type": "movie", "name": f"T{t}", "language": "en", "created_at": now,
                     "updated_at": now} for t in range(n_titles)])
                rows = []
                for t in range(n_titles):
                    for name, gb in RENDITIONS:
                        rows.append(Rendition(f"t{t}/{name}.mp4", f"t{t}", "video", "avc1", "ready",
                                              size=int(gb * GB), sha256=f"{t:064x}"))
                await catalog.insert_renditions(conn, rows, now)
                await conn.execute(licences.insert(), [{"title_id": f"t{t}", "region": "DE", "start_at": 0.0,
                                                        "end_at": None, "exclusive": False} for t in range(n_titles)])
                order = rng.sample(range(n_titles), n_titles)
                await popularity.add_views(conn, {("DE", f"t{t}"): 1000.0 / (i + 1) for i, t in enumerate(order)},
                                           now, 3 * 86400)
                top = [f"t{t}" for t in order[: held // len(RENDITIONS)]]
                for a in range(n_appliances):
                    token = credentials.new_token()
                    tokens[f"oca-{a}"] = token
                    spec = ApplianceSpec(f"oca-{a}", "embedded", f"site-{a % 100}", f"region-{a % 20}", "DE",
                                         64500, f"http://10.0.{a // 250}.{a % 250}:8080", 100 * 10**12,
                                         200 * 10**12, 100 * 10**9)
                    await fleet.insert(conn, spec, credentials.hash_token(token), now)
                    items = tuple(Item(f"{t}/{name}.mp4", int(gb * GB), "0" * 64, "hdd")
                                  for t in top for name, gb in RENDITIONS)
                    report = Report(now, "ok", {"status": "ok"}, {}, 0.1, FullInventory(1, items), {})
                    await fleet.apply_report(conn, spec.id, report, now)
        finally:
            await engine.dispose()

    t0 = time.perf_counter()
    asyncio.run(load())
    load_s = time.perf_counter() - t0
    ring = tmp / "keys.toml"
    ring.write_text('[[keys]]\nid = "k1"\nsecret = "' + "c" * 40 + '"\n')
    port = free_port()
    config = control_config(tmp, url, port)
    config.write_text(config.read_text() + f'[signing]\nkey_ring = "{ring}"\n[fleet]\nstale_after = "1d"\n')
    proc = pinned([sys.executable, "-m", "control_plane.cli", "serve", "--config", str(config)],
                  stdout=subprocess.DEVNULL)
    timings, items, cached = [], 0, []
    try:
        wait_http(port)
        import urllib.request
        for aid in rng.sample(sorted(tokens), samples):
            req = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1/appliances/{aid}/fill-manifest",
                                         headers={"Authorization": f"Bearer {tokens[aid]}"})
            t1 = time.perf_counter()
            with urllib.request.urlopen(req, timeout=120) as r:
                raw = r.read()
                etag = r.headers["ETag"]
            timings.append((time.perf_counter() - t1) * 1000)      # to the last byte, not parsed
            doc = json.loads(raw)
            items = len(doc["items"])
            req.add_header("If-None-Match", etag)
            t2 = time.perf_counter()
            try:
                urllib.request.urlopen(req, timeout=120)
            except urllib.error.HTTPError as e:
                assert e.code == 304, e.code
            cached.append((time.perf_counter() - t2) * 1000)
    finally:
        stop(proc)
    return {"titles": n_titles, "appliances": n_appliances, "keys_held_per_appliance": held,
            "load_s": round(load_s, 1), "sampled": samples, "items": items,
            "http_ms_median": round(statistics.median(timings), 1),
            "http_304_ms_median": round(statistics.median(cached), 1)}


def bench_heartbeats(tmp: Path, seconds: float, connections: int, rounds: int = 2) -> dict:
    """Bare, SQLite and PostgreSQL interleaved for `rounds` rounds (the box is shared and noisy):
    each figure is the best round; every round must have lost nothing."""
    from tests.integration.control_plane.pgcluster import PgCluster

    script = wrk_script(tmp)
    runs: dict[str, list[dict]] = {"bare_aiohttp": [], "sqlite": [], "postgresql": [], "sqlite_box": [],
                                   "postgresql_box": []}
    box = len(os.sched_getaffinity(0))     # workers for the per-box runs: one per core
    cluster = PgCluster()
    cluster.start()
    try:
        for n in range(rounds):
            runs["bare_aiohttp"].append(bench_bare(tmp, script, seconds, connections))
            runs["sqlite"].append(bench_control(tmp, f"sqlite:///{tmp / f'hb{n}.db'}", script, seconds, connections))
            runs["postgresql"].append(bench_control(tmp, cluster.new_database("bench"), script, seconds, connections))
            runs["sqlite_box"].append(bench_control(tmp, f"sqlite:///{tmp / f'hbbox{n}.db'}", script, seconds,
                                                    connections, workers=box))
            runs["postgresql_box"].append(bench_control(tmp, cluster.new_database("benchbox"), script, seconds,
                                                        connections, workers=box))
    finally:
        cluster.stop()
    out: dict = {}
    for name, results in runs.items():
        best = max(results, key=lambda r: r["rps"])
        out[name] = {k: best[k] for k in ("rps", "requests", "non_2xx", "p99_ms")}
        out[name]["rounds_rps"] = [round(r["rps"]) for r in results]
        if "flushed" in best:
            out[name].update(accepted=best["accepted"], flushed=best["flushed"],
                             nothing_lost=all(r["nothing_lost"] for r in results))
    out["ratio_sqlite_vs_bare"] = round(out["sqlite"]["rps"] / out["bare_aiohttp"]["rps"], 3)
    out["ratio_postgresql_vs_bare"] = round(out["postgresql"]["rps"] / out["bare_aiohttp"]["rps"], 3)
    out["box_workers"] = box
    out["target_rps"] = 20_000
    out["target_met_per_box"] = {db: out[f"{db}_box"]["rps"] >= 20_000 for db in ("sqlite", "postgresql")}
    return out


def ingest_core(tmp: Path, records: int) -> dict:
    from tests.integration.control_plane.pgcluster import PgCluster

    out = {"sqlite": bench_ingest_core(f"sqlite:///{tmp / 'core.db'}", records)}
    cluster = PgCluster()
    cluster.start()
    try:
        out["postgresql"] = bench_ingest_core(cluster.new_database("core"), records)
    finally:
        cluster.stop()
    return out


# -- main ------------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.control", description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--skip-heartbeats", action="store_true")
    ap.add_argument("--skip-fill", action="store_true")
    args = ap.parse_args(argv)
    for tool in ("wrk", "taskset"):
        if not shutil.which(tool):
            print(f"bench.control: {tool} is required (scripts/system-packages.txt)", file=sys.stderr)
            return 1
    seconds = 2.0 if args.quick else args.seconds
    n_titles, n_appliances = (1_700, 100) if args.quick else (17_000, 1_000)
    out: dict = {"cores": os.cpu_count(), "wrk": {"threads": 1, "connections": args.connections, "seconds": seconds}}
    with tempfile.TemporaryDirectory(prefix="bench-control-") as d:
        tmp = Path(d)
        os.chmod(tmp, 0o755)
        if not args.skip_heartbeats:
            out["heartbeats"] = bench_heartbeats(tmp, seconds, args.connections)
            out["ingest_core"] = ingest_core(tmp, 50_000 if args.quick else 300_000)
        if not args.skip_fill:
            out["fill_pure"] = bench_fill_pure(n_titles, n_appliances, samples=5 if args.quick else 12, held=2_000)
            out["fill_http_sqlite"] = bench_fill_http(tmp, n_titles, n_appliances // 5, held=500,
                                                      samples=3 if args.quick else 6)
    print_table(out)
    print(json.dumps(out, separators=(",", ":")))
    return 0


def print_table(out: dict) -> None:
    if "heartbeats" in out:
        print_heartbeats(out)
    if "fill_pure" in out:
        print_fill(out)


def print_heartbeats(out: dict) -> None:
    hb = out["heartbeats"]
    print(f"Heartbeat ingest, one server process on core 0, wrk -t1 -c{out['wrk']['connections']} on core 1, "
          f"{out['wrk']['seconds']:g}s per run, servers interleaved, best of the rounds")
    print(f"  {'server':<28}{'best req/s':>11}{'rounds':>16}{'p99 ms':>9}{'non-2xx':>9}"
          "  nothing lost (flushed/accepted)")
    for name, label in (("bare_aiohttp", "bare aiohttp 204 (reference)"), ("sqlite", "oca-control, SQLite"),
                        ("postgresql", "oca-control, PostgreSQL"),
                        ("sqlite_box", f"  per box, {hb['box_workers']} workers"),
                        ("postgresql_box", f"  per box, {hb['box_workers']} workers, PG")):
        r = hb[name]
        lost = "-" if "nothing_lost" not in r else f"{r['nothing_lost']} ({r['flushed']}/{r['accepted']})"
        rounds = "/".join(map(str, r["rounds_rps"]))
        print(f"  {label:<28}{r['rps']:>11.0f}{rounds:>16}{r['p99_ms']:>9.1f}{r['non_2xx']:>9}  {lost}")
    print(f"  ratio vs bare: SQLite {hb['ratio_sqlite_vs_bare']:.2f}, PostgreSQL {hb['ratio_postgresql_vs_bare']:.2f}"
          f" (one worker on one core)")
    met = hb["target_met_per_box"]
    print(f"  per box ({hb['box_workers']} workers over every core, wrk sharing one of them): target "
          f"{hb['target_rps']} req/s {'met' if met['sqlite'] else 'NOT met'} with SQLite, "
          f"{'met' if met['postgresql'] else 'NOT met'} with PostgreSQL")
    core = out["ingest_core"]
    print(f"  ingest core without HTTP (parse + validate + buffer + SQL flush), one core: "
          f"SQLite {core['sqlite']['per_s']}/s (flush {core['sqlite']['flush_share']:.0%} of the time), "
          f"PostgreSQL {core['postgresql']['per_s']}/s (flush {core['postgresql']['flush_share']:.0%})")


def print_fill(out: dict) -> None:
    f = out["fill_pure"]
    print(f"\nFill manifests, pure (one core): {f['titles']} titles x 5 = {f['renditions']} renditions, "
          f"{f['appliances']} appliances holding {f['keys_held_per_appliance']} keys each, median of "
          f"{f['sampled_appliances']}")
    print(f"  plan {f['plan_ms_median']} ms + sources {f['source_index_ms_median']} ms + render/sign/JSON "
          f"{f['render_sign_json_ms_median']} ms = {f['manifest_ms_median']} ms per manifest "
          f"({f['items_median']} items, {f['manifest_mb_median']} MB)")
    print(f"  all {f['appliances']} appliances: {f['all_appliances_s_one_core']} s on one core")
    h = out["fill_http_sqlite"]
    print(f"\nFill manifest over HTTP, SQLite: {h['titles']} titles, {h['appliances']} appliances x "
          f"{h['keys_held_per_appliance']} keys (load {h['load_s']} s)")
    print(f"  GET {h['http_ms_median']} ms median ({h['items']} items), If-None-Match -> 304 "
          f"{h['http_304_ms_median']} ms")


if __name__ == "__main__":
    sys.exit(main())
