"""Steering at Open Connect scale: `python -m bench.steering` (or `make bench-steering`).

A synthetic fleet (17,000 appliances, 1,000,000 IPv4 + 100,000 IPv6 prefixes, 17,000 titles) goes through
the real snapshot parser and model builder; then in-process decisions per second on one core, then HTTP
``/api/v1/steer`` requests per second with the server pinned to one core and wrk on the other, against a
bare aiohttp "hello" handler in the same run, and against the "floor" of any steering handler on aiohttp
(parse the query, one prefix lookup, a pre-rendered answer of the same size). The service runs as the
daemon runs it (plain cached queries answered at the connection, steering/connection.py) and, for
comparison, with `server.compiled_path = false` (every request through aiohttp's request handling). Then
the kernel-table read at 100,000 routes (netlink vs pyroute2, when root). Prints a readable table, then
one JSON line.

Options: ``--quick`` (a 10x smaller fleet, for a smoke run), ``--http-seconds N``, ``--http-reps N``, ``--skip-http``,
``--skip-routes``.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

from steering.decision import RankingCache, steer
from steering.fleet import FleetModel
from steering.ranking import Content
from steering.service import frozen_build

REGIONS = [f"region-{i}" for i in range(8)]
COUNTRIES = [f"{a}{b}" for a in "ABCDEFGH" for b in "ABCDE"]          # 40 synthetic country codes
RENDITIONS = ["avc-360p", "avc-720p", "avc-1080p", "hevc-2160p", "aac-128k"]


# -- the synthetic fleet ---------------------------------------------------------------------------

def v4_prefix(i: int) -> str:
    """The i-th /24 from 1.0.0.0 up (1,000,000 of them end near 16.66.0.0)."""
    n = (1 << 24) + (i << 8)
    return f"{n >> 24}.{(n >> 16) & 255}.{(n >> 8) & 255}.0/24"


def v6_prefix(i: int) -> str:
    """The i-th /48 under 2a00::/16."""
    return f"2a00:{i >> 16:x}:{i & 0xffff:x}::/48"


def make_snapshot(scale: float, seed: int = 7) -> tuple[dict[str, Any], dict[str, Any]]:
    rng = random.Random(seed)
    n_embedded, n_ixp, n_origin = int(16_000 * scale), int(990 * scale), 10
    n_v4, n_v6, n_titles = int(1_000_000 * scale), int(100_000 * scale), int(17_000 * scale)
    titles = {f"t{t}": [f"t{t}/{r}.mp4" for r in RENDITIONS] for t in range(n_titles)}
    title_ids = list(titles)
    popular = title_ids[: max(30, n_titles // 500)]                 # held by every embedded box
    head = title_ids[: max(100, n_titles // 8)]                      # the popular head
    n_isps = max(1, n_embedded // 8)                                 # 8 embedded appliances per ISP
    appliances = []
    for i in range(n_embedded):
        isp = i % n_isps
        held = popular + rng.sample(head, 20)
        appliances.append(_appliance(f"emb-{i}", "embedded", 64512 + isp, COUNTRIES[isp % 40],
                                     REGIONS[(isp % 40) % 8], [k for t in held for k in titles[t]],
                                     load=rng.choice([0.1, 0.3, 0.5, 0.7, 0.9])))
    for i in range(n_ixp):
        held = head[:300] + rng.sample(title_ids, 200)
        appliances.append(_appliance(f"ixp-{i}", "ixp", None, COUNTRIES[i % 40], REGIONS[(i % 40) % 8],
                                     [k for t in held for k in titles[t]], load=rng.random()))
    for i in range(n_origin):
        appliances.append(_appliance(f"origin-{i}", "origin", None, None, None, [], load=0.2, holds_all=True))
    for i in range(n_v4):
        appliances[i % n_embedded]["prefixes"]["ipv4"].append(v4_prefix(i))
    for i in range(n_v6):
        appliances[(i * 7) % n_embedded]["prefixes"]["ipv6"].append(v6_prefix(i))
    doc = {"version": 1, "generation": "bench-1", "generated_at": "2026-11-25T17:00:00Z", "stale_after_s": 90,
           "appliances": appliances, "titles": titles}
    shape = {"appliances": len(appliances), "embedded": n_embedded, "ixp": n_ixp, "origins": n_origin,
             "ipv4_prefixes": n_v4, "ipv6_prefixes": n_v6, "titles": n_titles,
             "keys": n_titles * len(RENDITIONS),
             "held_keys": sum(len(a["keys"]) for a in appliances)}
    return doc, shape


def _appliance(name: str, kind: str, asn: int | None, country: str | None, region: str | None,
               keys: list[str], *, load: float, holds_all: bool = False) -> dict[str, Any]:
    return {"id": name, "kind": kind, "site": name, "region": region, "country": country, "asn": asn,
            "base_url": f"http://{name}.oca.example:8080", "healthy": True, "fresh": True,
            "last_report_at": "2026-11-25T16:59:30Z", "load_ratio": round(load, 3),
            "link_capacity_bps": 100_000_000_000, "holds_all": holds_all,
            "prefixes": {"ipv4": [], "ipv6": []}, "keys": keys}


def write_geoip(directory: Path, shape: dict[str, Any]) -> tuple[Path, Path]:
    """GeoIP for the addresses no prefix covers (100.64.0.0/10 and 2c00::/16): ASNs of the synthetic ISPs."""
    from mmdb_writer import MMDBWriter
    from netaddr import IPSet

    n_isps = max(1, shape["embedded"] // 8)
    asn = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="GeoLite2-ASN")
    country = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="GeoLite2-Country")
    for j in range(64):
        isp = (j * 31) % n_isps
        nets = IPSet([f"100.{64 + j}.0.0/16", f"2c00:{j:x}::/32"])
        asn.insert_network(nets, {"autonomous_system_number": 64512 + isp})
        country.insert_network(nets, {"country": {"iso_code": COUNTRIES[isp % 40]}})
    paths = directory / "asn.mmdb", directory / "country.mmdb"
    asn.to_db_file(str(paths[0]))
    country.to_db_file(str(paths[1]))
    return paths


def make_requests(shape: dict[str, Any], count: int, seed: int = 11) -> list[tuple[str, Content]]:
    """70% IPv4 clients covered by a prefix, 10% IPv6 covered, 20% located by GeoIP; Zipf-ish titles."""
    rng = random.Random(seed)
    n_titles = shape["titles"]
    requests = []
    for _ in range(count):
        roll = rng.random()
        if roll < 0.7:
            net = v4_prefix(rng.randrange(shape["ipv4_prefixes"])).rsplit(".", 1)[0]
            ip = f"{net}.{rng.randrange(1, 255)}"
        elif roll < 0.8:
            ip = v6_prefix(rng.randrange(shape["ipv6_prefixes"])).replace("::/48", f":{rng.randrange(1, 999):x}::1")
        else:
            ip = f"100.{64 + rng.randrange(64)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
        title = min(int(rng.paretovariate(0.8)) - 1, n_titles - 1)
        requests.append((ip, Content(key=f"t{title}/{rng.choice(RENDITIONS)}.mp4")))
    return requests


# -- measurements ------------------------------------------------------------------------------------

def calibration_us() -> float:
    """Wall µs per sum(range(1000)) over half a second (~8 on an idle 2020s x86 core): scales every other
    number when the machine is shared and busy."""
    started, runs = time.perf_counter(), 0
    while time.perf_counter() - started < 0.5:
        sum(range(1000))
        runs += 1
    return round((time.perf_counter() - started) / runs * 1e6, 2)


def rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def measure_decisions(model: FleetModel, geo: Any, requests: list[tuple[str, Content]],
                      streams: tuple[list[tuple[str, Content]], list[tuple[str, Content]]],
                      seconds: float) -> dict[str, Any]:
    """Uncached (the pure core, every decision computed) for `seconds`; then the service's path, with the
    ranking cache: one pass of a fresh stream from an empty cache (a cold start), then a second fresh
    stream on the now warm cache (steady state). Fresh: drawn from the same distribution with another
    seed, so (address, key) pairs do not repeat and hits come only from clients sharing a place and a
    title. CPU time of this one process on one core: other work on the shared machine does not count."""
    tiers: dict[str, int] = {}
    for ip, content in requests[:20000]:
        decision = steer(model, geo, ip, content, limit=5)
        tiers[decision.tier_label] = tiers.get(decision.tier_label, 0) + 1
    done, started = 0, time.process_time()
    while time.process_time() - started < seconds:
        for ip, content in requests:
            steer(model, geo, ip, content, limit=5)
        done += len(requests)
    elapsed = time.process_time() - started
    result = {"uncached_per_s": round(done / elapsed), "uncached_us": round(elapsed / done * 1e6, 2)}
    cache = RankingCache(model)
    rss_before = rss_mib()
    for phase, stream in zip(("cold", "warm"), streams, strict=True):
        hits_before = cache.hits
        started = time.process_time()
        for ip, content in stream:
            steer(model, geo, ip, content, limit=5, cache=cache)
        cached_elapsed = time.process_time() - started
        result[phase] = {"per_s": round(len(stream) / cached_elapsed),
                         "us": round(cached_elapsed / len(stream) * 1e6, 2),
                         "hit_ratio": round((cache.hits - hits_before) / len(stream), 3), "stream": len(stream)}
    result["cache_entries"] = len(cache._entries)
    result["cache_rss_mib"] = round(rss_mib() - rss_before, 1)
    result["first_tier_share"] = {k: round(v / 20000, 3) for k, v in sorted(tiers.items())}
    return result


def _serve(app_factory: Any, port: int, cpu: int) -> None:
    """Child process: one core, uvloop, the server on `port`; exits on SIGTERM. The steering app is served
    as the daemon serves it (steering.service.serve_app: the front door before the app's router); a bare
    handler on aiohttp's low-level server (web.Server)."""
    import uvloop
    from aiohttp import web

    from steering.cli import run
    from steering.service import HANDLERS, serve_app, serve_runner

    os.sched_setaffinity(0, {cpu})
    uvloop.install()
    served = app_factory()
    if not isinstance(served, web.Application):
        async def low_level() -> None:      # web.Server wants the running loop
            await serve_runner(web.ServerRunner(web.Server(served, access_log=None), handle_signals=True),
                               "127.0.0.1", port)
        run(low_level())
    elif HANDLERS in served:
        run(serve_app(served, "127.0.0.1", port))
    else:
        web.run_app(served, host="127.0.0.1", port=port, access_log=None, print=None, handle_signals=True)
    os._exit(0)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(port: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"server on port {port} did not start")


class Server:
    """One HTTP server in a forked child pinned to a core, measured with wrk from the other core."""

    def __init__(self, app_factory: Any, paths: list[str], cpus: tuple[int, int]) -> None:
        self.port, self.cpus = _free_port(), cpus
        self.pid = os.fork()
        if self.pid == 0:
            try:
                _serve(app_factory, self.port, cpus[0])
            except BaseException:
                traceback.print_exc()     # os._exit skips the interpreter's own report
            finally:
                os._exit(1)
        with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
            script.write("paths = {" + ",".join(json.dumps(p) for p in paths) + "}\n"
                         "i = 0\nrequest = function()\n  i = i % #paths + 1\n"
                         "  return wrk.format('GET', paths[i])\nend\n")
        self.script = script.name
        try:
            _wait_port(self.port)
            # Warm-up: the forked server shares the model's pages with this process, and its first write
            # to each (a reference count) copies the page, which a steering daemon that built its own
            # model never does. Two passes over the paths copy what they touch before anything is measured.
            first = self._wrk(1)
            self.warm_up_s = 1 + min(15, math.ceil(2 * len(paths) / max(1.0, _rps(first))))
            self._wrk(self.warm_up_s - 1)
        except BaseException:
            self.stop()
            raise

    def _wrk(self, seconds: int) -> str:
        return subprocess.run(["taskset", "-c", str(self.cpus[1]), "wrk", "-t1", "-c32", f"-d{seconds}s", "-s",
                               self.script, f"http://127.0.0.1:{self.port}/"],
                              capture_output=True, text=True, check=True).stdout

    def measure(self, seconds: int) -> dict[str, Any]:
        faults = _minor_faults(self.pid)
        out = self._wrk(seconds)
        faults = _minor_faults(self.pid) - faults
        requests = next((int(line.split()[0]) for line in out.splitlines() if "requests in" in line), 0)
        return {"req_per_s": round(_rps(out)), "avg_latency": next(
                    (line.split()[1] for line in out.splitlines() if line.strip().startswith("Latency")), ""),
                "non_2xx": next((int(line.split()[-1]) for line in out.splitlines() if "Non-2xx" in line), 0),
                "page_faults_per_req": round(faults / max(1, requests), 3)}

    def stop(self) -> None:
        os.unlink(self.script)
        os.kill(self.pid, signal.SIGTERM)
        os.waitpid(self.pid, 0)


def run_servers(factories: dict[str, Any], paths: list[str], seconds: int, reps: int,
                cpus: tuple[int, int]) -> dict[str, dict[str, Any]]:
    """Warm every server up, then measure them in turn `reps` times: each figure is the median run, and
    the machine's drift over the minutes this takes falls on all of them alike."""
    servers: dict[str, Server] = {}
    try:
        for name, factory in factories.items():
            servers[name] = Server(factory, paths, cpus)
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in servers}
        for _ in range(reps):
            for name, server in servers.items():
                runs[name].append(server.measure(seconds))
        results = {}
        for name, server in servers.items():
            result = sorted(runs[name], key=lambda r: r["req_per_s"])[len(runs[name]) // 2]
            result.update(runs_req_per_s=[r["req_per_s"] for r in runs[name]], warm_up_s=server.warm_up_s)
            result.update(_scrape_cache_figures(server.port))
            results[name] = result
        return results
    finally:
        for server in servers.values():
            server.stop()


def _rps(wrk_output: str) -> float:
    return next(float(line.split()[1]) for line in wrk_output.splitlines() if line.startswith("Requests/sec"))


def _minor_faults(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[7])


def _scrape_cache_figures(port: int) -> dict[str, float]:
    """The steering server's ranking-cache hit ratio and the share of its steer answers that the compiled
    cached path wrote (empty for the reference servers, which have no /metrics)."""
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
            text = resp.read().decode()
    except OSError:
        return {}
    figures, decisions = {}, 0.0
    for line in text.splitlines():
        if line.startswith("oca_steering_ranking_cache_hit_ratio "):
            figures["cache_hit_ratio"] = round(float(line.split()[1]), 3)
        elif line.startswith('oca_steering_decisions_total{api="steer"'):
            decisions += float(line.split()[1])
        elif line.startswith("oca_steering_compiled_answers_total "):
            figures["compiled_share"] = float(line.split()[1])
    if "compiled_share" in figures:
        figures["compiled_share"] = round(figures["compiled_share"] / max(1.0, decisions), 3)
    return figures


def measure_http(model: FleetModel, geo: Any, requests: list[tuple[str, Content]],
                 seconds: int, reps: int, cpus: list[int]) -> dict[str, Any]:
    from urllib.parse import urlencode

    from aiohttp import web
    from prometheus_client import CollectorRegistry

    from steering.config import ContentSteeringConfig, RankingConfig
    from steering.fleet import ModelHolder
    from steering.metrics import SteeringMetrics
    from steering.service import Settings, create_app

    async def say_hello(request: web.BaseRequest) -> web.Response:
        return web.Response(text="hello")

    def hello_app() -> web.Application:
        app = web.Application()
        app.router.add_get("/api/v1/steer", say_hello)
        return app

    def hello_low_level() -> Any:
        # Not the target's reference: what "hello" costs without the app's router, for comparison with
        # the steering service, whose front door skips that router for cached answers.
        return say_hello

    def floor_app() -> web.Application:
        # The least a steering handler on aiohttp does: read the query, one longest-prefix match, and
        # a body of the answer's size (rendered once, ahead). No GeoIP, ranking, rendering or metrics.
        import orjson

        from steering.decision import answer_document
        from steering.prefixes import normalize_ip

        ip, content = requests[0]
        body = orjson.dumps(answer_document(steer(model, geo, ip, content, limit=5), model, 0.0))

        async def floor(request: web.Request) -> web.Response:
            query = request.query
            model.prefixes.lookup(*normalize_ip(query["ip"]))
            query.get("key")
            return web.Response(body=body, content_type="application/json")
        app = web.Application()
        app.router.add_get("/api/v1/steer", floor)
        return app

    def steering_app(compiled_path: bool = True) -> web.Application:
        holder = ModelHolder(time.monotonic)
        holder.swap(model)
        metrics = SteeringMetrics(CollectorRegistry(), holder.age)
        return create_app(Settings(RankingConfig(), ContentSteeringConfig(), compiled_path), holder, geo, metrics)

    paths = [f"/api/v1/steer?{urlencode({'ip': ip, 'key': c.key})}" for ip, c in requests[:20000]]
    pair = (cpus[0], cpus[-1])
    runs = run_servers({"hello": hello_app, "hello_low_level": hello_low_level, "floor": floor_app,
                        "steer": steering_app, "steer_aiohttp": lambda: steering_app(False)},
                       paths, seconds, reps, pair)
    hello, floor, steer_result = runs["hello"], runs["floor"], runs["steer"]
    return {"hello": hello, "hello_low_level": runs["hello_low_level"], "floor": floor, "steer": steer_result,
            "steer_aiohttp": runs["steer_aiohttp"],
            "ratio": round(steer_result["req_per_s"] / max(1, hello["req_per_s"]), 3),
            "aiohttp_ratio": round(runs["steer_aiohttp"]["req_per_s"] / max(1, hello["req_per_s"]), 3),
            "floor_ratio": round(floor["req_per_s"] / max(1, hello["req_per_s"]), 3),
            "ratio_runs": [round(s / max(1, h), 3) for s, h in zip(steer_result["runs_req_per_s"],
                                                                  hello["runs_req_per_s"], strict=True)],
            "server_cpu": pair[0], "wrk_cpu": pair[1]}


def measure_routes(count: int = 100_000) -> dict[str, Any]:
    """Kernel table 100 in a scratch namespace with `count` IPv4 /24s + 4 IPv6 routes, read both ways."""
    from oca.kernel_routes import read_table, read_table_pyroute2

    if os.geteuid() != 0 or shutil.which("ip") is None:
        return {"skipped": "needs root and iproute2"}
    ns = f"bench-krt-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)
        results: dict[str, Any] = {}
        for label, n in (("small", 7), ("full", count)):
            subprocess.run(["ip", "-n", ns, "route", "flush", "table", "100"], capture_output=True)
            subprocess.run(["ip", "-n", ns, "-6", "route", "flush", "table", "100"], capture_output=True)
            batch = "".join(f"route add blackhole {v4_prefix(i)} table 100\n" for i in range(n - 4))
            batch += "".join(f"route add blackhole 2001:db8:{i:x}::/48 table 100\n" for i in range(4))
            subprocess.run(["ip", "-n", ns, "-batch", "-"], input=batch.encode(), check=True)
            row: dict[str, Any] = {"routes": n}
            for name, reader in (("netlink", read_table), ("pyroute2", read_table_pyroute2)):
                cpu0, wall0 = time.process_time(), time.perf_counter()
                got = reader(100, netns=ns)
                row[name] = {"wall_s": round(time.perf_counter() - wall0, 3),
                             "cpu_s": round(time.process_time() - cpu0, 3),
                             "rows": len(got.ipv4) + len(got.ipv6)}
            results[label] = row
        return results
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


# -- main -------------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.steering", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a fleet 10x smaller (smoke run)")
    parser.add_argument("--decision-seconds", type=float, default=5.0)
    parser.add_argument("--http-seconds", type=int, default=6)
    parser.add_argument("--http-reps", type=int, default=3, help="runs per server, interleaved; medians")
    parser.add_argument("--skip-http", action="store_true")
    parser.add_argument("--skip-routes", action="store_true")
    args = parser.parse_args(argv)
    scale = 0.1 if args.quick else 1.0
    all_cpus = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {all_cpus[0]})     # decisions on one core
    result: dict[str, Any] = {"bench": "steering", "scale": scale, "calibration_us": calibration_us(),
                              "loadavg_1m": round(os.getloadavg()[0], 2)}

    started = time.perf_counter()
    doc, shape = make_snapshot(scale)
    result["fleet"] = shape
    result["generate_s"] = round(time.perf_counter() - started, 2)
    body = json.dumps(doc, separators=(",", ":")).encode()
    del doc
    gc.collect()
    result["snapshot_mib"] = round(len(body) / 2**20, 1)
    base_rss = rss_mib()
    # Built as the daemon builds (steering.service.frozen_build): the collector off, then the model frozen,
    # which also keeps a collection in a forked HTTP server from writing to every object of the model.
    started = time.perf_counter()
    with frozen_build():
        model = FleetModel.from_json(body)
    result["model_build_s"] = round(time.perf_counter() - started, 2)
    # The common case at fleet scale: a new snapshot where only health, load and freshness changed.
    started = time.perf_counter()
    with frozen_build():
        rebuilt = FleetModel.from_json(body, previous=model)
    result["model_rebuild_s"] = round(time.perf_counter() - started, 2)
    assert rebuilt.prefixes is model.prefixes
    model = rebuilt
    del body, rebuilt
    gc.collect()
    result["model_rss_mib"] = round(rss_mib() - base_rss + result["snapshot_mib"], 1)
    result["process_rss_mib"] = round(rss_mib(), 1)

    with tempfile.TemporaryDirectory() as tmp:
        from steering.geo import GeoLookup
        geo = GeoLookup(*write_geoip(Path(tmp), shape))
        requests = make_requests(shape, 50_000)
        streams = make_requests(shape, 400_000, seed=12), make_requests(shape, 400_000, seed=13)
        # 900,000 request tuples are the bench's input, not the service's heap: out of the collector's way.
        gc.freeze()
        result["decisions"] = measure_decisions(model, geo, requests, streams, args.decision_seconds)
        del streams
        if not args.skip_http:
            result["http"] = measure_http(model, geo, requests, args.http_seconds, args.http_reps, all_cpus)
        geo.close()
    if not args.skip_routes:
        del model
        gc.collect()
        result["kernel_table_read"] = measure_routes()
    print_table(result)
    print(json.dumps(result, separators=(",", ":")))
    return 0


def print_table(r: dict[str, Any]) -> None:
    f = r["fleet"]
    rows = [
        ("machine", f"calibration sum(range(1000)) = {r['calibration_us']} us (idle core ~8), "
                    f"load average {r['loadavg_1m']} on {os.cpu_count()} CPUs"),
        ("fleet", f"{f['appliances']:,} appliances ({f['embedded']:,} embedded, {f['ixp']:,} ixp, "
                  f"{f['origins']} origins), {f['ipv4_prefixes']:,} IPv4 + {f['ipv6_prefixes']:,} IPv6 prefixes, "
                  f"{f['titles']:,} titles / {f['keys']:,} keys, {f['held_keys']:,} held"),
        ("snapshot JSON", f"{r['snapshot_mib']} MiB"),
        ("model build (parse+validate+index)", f"{r['model_build_s']} s"),
        ("model rebuild, keys and prefixes unchanged", f"{r['model_rebuild_s']} s"),
        ("model memory (RSS growth)", f"{r['model_rss_mib']} MiB (process RSS {r['process_rss_mib']} MiB)"),
        ("decisions/s, one core, uncached", f"{r['decisions']['uncached_per_s']:,} "
                                            f"({r['decisions']['uncached_us']} us each; target >= 100,000)"),
        *((f"decisions/s, one core, service path, {phase} cache",
           f"{d['per_s']:,} ({d['us']} us each; ranking-cache hit ratio {d['hit_ratio']} over {d['stream']:,} "
           f"fresh requests{'; target >= 100,000' if phase == 'warm' else ''})")
          for phase, d in ((p, r["decisions"][p]) for p in ("cold", "warm"))),
        ("ranking cache", f"{r['decisions']['cache_entries']:,} rankings, RSS growth "
                          f"{r['decisions']['cache_rss_mib']} MiB"),
        ("first-candidate tiers", ", ".join(f"{k} {v:.1%}" for k, v in r["decisions"]["first_tier_share"].items())),
    ]
    if "http" in r:
        h = r["http"]
        runs = ", ".join(f"{n:,}" for n in h["hello"]["runs_req_per_s"])
        rows += [("HTTP hello req/s (1 core)",
                  f"{h['hello']['req_per_s']:,} (median of {runs}; avg latency {h['hello']['avg_latency']})"),
                 ("HTTP /api/v1/steer req/s (1 core)",
                  f"{h['steer']['req_per_s']:,} (avg latency {h['steer']['avg_latency']}, "
                  f"non-2xx {h['steer']['non_2xx']}, "
                  f"ranking-cache hit ratio {h['steer'].get('cache_hit_ratio')}, "
                  f"compiled answers {h['steer'].get('compiled_share')}, "
                  f"page faults/req {h['steer']['page_faults_per_req']} after {h['steer']['warm_up_s']} s warm-up)"),
                 ("HTTP /api/v1/steer req/s, compiled_path off",
                  f"{h['steer_aiohttp']['req_per_s']:,} (every request through aiohttp's request handling; "
                  f"/ hello {h['aiohttp_ratio']}; compiled answers {h['steer_aiohttp'].get('compiled_share')})"),
                 ("HTTP hello req/s, low-level server",
                  f"{h['hello_low_level']['req_per_s']:,} (web.Server without the app's router; not the "
                  f"target's reference)"),
                 ("HTTP floor req/s (1 core)",
                  f"{h['floor']['req_per_s']:,} (query + one prefix lookup + a pre-rendered answer; "
                  f"floor / hello {h['floor_ratio']})"),
                 ("steer / hello", f"{h['ratio']} (target >= 0.8; run by run {h['ratio_runs']})")]
    for row in r.get("kernel_table_read", {}).values():
        if isinstance(row, dict):
            rows.append((f"kernel table read, {row['routes']:,} routes",
                         f"netlink {row['netlink']['wall_s']} s wall / {row['netlink']['cpu_s']} s CPU; "
                         f"pyroute2 {row['pyroute2']['wall_s']} s wall / {row['pyroute2']['cpu_s']} s CPU"))
        else:
            rows.append(("kernel table read", row))
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{width}}  {v}")


if __name__ == "__main__":
    sys.exit(main())
