"""Edge server vs nginx, same files, same run: ``python -m bench.edge`` (``make bench-edge``).

Workloads (wrk, one thread, pinned to the second core; each server pinned to the first core, one
worker, our access log and /metrics on, tokens required like an appliance):

- ``2MiB``  full GETs of random 2 MiB files                      → Gbit/s
- ``64KiB`` random 64 KiB ranges of one 64 MiB file              → req/s
- ``1KiB``  random 1 KiB ranges                                  → req/s
- ``p99``   64 KiB ranges at a fixed moderate rate (16 connections, one request per 10 ms each)
            → p50 / p99 latency
- ``idle``  5,000 idle keep-alive connections                    → server RSS per connection
- every load: server CPU µs per request (utime+stime of the server's processes / requests)
- ``hot path``: CPU per 1 KiB range request in process, without the network (bench/edge_hotpath.py),
  against the bare syscall floor: the figure that stays put when the machine is shared

nginx runs with the EDGE_PERF.md settings and its access log on (like for like). Ratios are ours /
nginx per repetition, the median is reported (latency ratios: lower is better). A readable table,
then one JSON object on the last line.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import secrets
import selectors
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.edge_hotpath import store_toml
from bench.nginx import Nginx

TICK = os.sysconf("SC_CLK_TCK")
SEGMENTS = 32
SEGMENT = 2 * 1024 * 1024
BIG = 64 * 1024 * 1024
IDLE_CONNECTIONS = 5000


# -- fixtures -------------------------------------------------------------------------------------
def make_content(work: Path) -> tuple[Path, Path, dict]:
    """Files in a store (ours) + a hard-linked key tree for nginx: the same inodes, same page cache."""
    from oca.config import load_oca_config
    from oca.store import Store, init_disks

    src = work / "src"
    src.mkdir()
    keys = [f"t{i}/seg.mp4" for i in range(SEGMENTS)]
    for k in keys:
        (src / k).parent.mkdir(parents=True, exist_ok=True)
        (src / k).write_bytes(os.urandom(SEGMENT))
    (src / "big.mp4").write_bytes(os.urandom(BIG))
    keys.append("big.mp4")
    secret = secrets.token_hex(32)
    (work / "keys.toml").write_text(f'[[keys]]\nid = "bench"\nsecret = "{secret}"\n')
    (work / "oca.toml").write_text(store_toml(work, "10GiB") + f"""
[server]
listen = "127.0.0.1:0"
workers = 1
max_connections = 12000
[limits]
idle_timeout = "5m"
[tokens]
mode = "require"
keys_file = "{work}/keys.toml"
[log]
access_log = "{work}/oca-access.log"
[admin]
listen = "127.0.0.1:0"
""")
    config = load_oca_config(work / "oca.toml")
    init_disks(config.store)
    nginx_root = work / "nginx-root"
    with Store.open(config.store, cleanup=True) as store:
        for k in keys:
            entry = store.add_file(k, src / k)
            (nginx_root / k).parent.mkdir(parents=True, exist_ok=True)
            os.link(store.path_of(entry), nginx_root / k)
    shutil.rmtree(src)
    return work / "oca.toml", nginx_root, {"secret": secret, "keys": keys}


def signed(path: str, secret: str) -> str:
    from oca.tokens import sign_query

    return f"{path}?{sign_query(path, 'bench', secret, int(time.time()) + 86400)}"


def lua_scripts(work: Path, content: dict) -> dict[str, dict[str, Path]]:
    """Per server, per workload: a wrk Lua script (ours with signed URLs)."""
    scripts: dict[str, dict[str, Path]] = {}
    for server in ("nginx", "oca"):
        def url(p: str, server: str = server) -> str:
            return signed(p, content["secret"]) if server == "oca" else p
        segs = ", ".join(f'"{url("/" + k)}"' for k in content["keys"] if k != "big.mp4")
        big = url("/big.mp4")
        out = {}
        out["2MiB"] = _lua(work, f"{server}-2m", f"""
local paths = {{ {segs} }}
request = function() return wrk.format("GET", paths[math.random(#paths)]) end
""")
        for name, length in (("64KiB", 65536), ("1KiB", 1024)):
            out[name] = _lua(work, f"{server}-{name}", _range_lua(big, length))
        out["p99"] = _lua(work, f"{server}-p99", _range_lua(big, 65536) + "delay = function() return 10 end\n")
        scripts[server] = out
    return scripts


def _range_lua(path: str, length: int) -> str:
    return f"""
math.randomseed(os.time())
request = function()
  local off = math.random(0, {BIG - length})
  return wrk.format("GET", "{path}", {{["Range"] = "bytes=" .. off .. "-" .. (off + {length - 1})}})
end
"""


def _lua(work: Path, name: str, text: str) -> Path:
    p = work / f"{name}.lua"
    p.write_text(text)
    return p


# -- servers --------------------------------------------------------------------------------------
class Floor:
    """bench/edge_floor.py on the nginx tree: the stack's floor (no features), pinned like the others."""

    def __init__(self, root: Path, cpu: int) -> None:
        self.port = _free_port()
        self.proc = subprocess.Popen(["taskset", "-c", str(cpu), sys.executable, "-m", "bench.edge_floor",
                                      str(root), str(self.port)], stdout=subprocess.PIPE)
        if self.proc.stdout.readline().strip() != b"ready":
            raise RuntimeError("bench.edge_floor did not start")

    def pids(self) -> list[int]:
        return [self.proc.pid]

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(60)


class Ours:
    def __init__(self, config: Path, cpu: int) -> None:
        self.proc = subprocess.Popen(
            ["taskset", "-c", str(cpu), sys.executable, "-m", "oca.cli", "--log-level", "WARNING", "serve",
             "--config", str(config)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("oca serve did not start")
        ready = json.loads(line)
        host, port = ready["listen"].rsplit(":", 1)
        self.host, self.port, self.admin = host, int(port), ready["admin"]
        self.worker_pids = ready["pids"]

    def pids(self) -> list[int]:
        return [self.proc.pid, *self.worker_pids]

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(60)


def cpu_ticks(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])   # utime, stime
    return total


def rss_kib(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            m = re.search(r"VmRSS:\s+(\d+)", Path(f"/proc/{pid}/status").read_text())
        except OSError:
            continue
        total += int(m.group(1)) if m else 0
    return total


# -- wrk ------------------------------------------------------------------------------------------
def run_wrk(host: str, port: int, script: Path, seconds: float, connections: int, cpu: int) -> dict:
    out = subprocess.run(["taskset", "-c", str(cpu), "wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s",
                          "--latency", "-s", str(script), f"http://{host}:{port}/"],
                         capture_output=True, text=True, check=True).stdout
    def num(pattern: str) -> float:
        m = re.search(pattern, out)
        return float(m.group(1)) if m else 0.0
    requests = int(num(r"(\d+) requests in"))
    transfer = re.search(r"(\d+) requests in [\d.]+\w+, ([\d.]+)(\w+) read", out)
    unit = {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}
    read_bytes = float(transfer.group(2)) * unit[transfer.group(3)] if transfer else 0.0
    elapsed = seconds
    return {"requests": requests, "rps": num(r"Requests/sec:\s+([\d.]+)"),
            "gbps": read_bytes * 8 / elapsed / 1e9,
            "p50_ms": _ms(out, "50%"), "p99_ms": _ms(out, "99%"),
            "errors": "Non-2xx" in out or "Socket errors" in out, "raw": out}


def _ms(out: str, pct: str) -> float:
    m = re.search(rf"{re.escape(pct)}\s+([\d.]+)(us|ms|s)\b", out)
    if not m:
        return 0.0
    return float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]


def measure(server, host: str, port: int, script: Path, seconds: float, connections: int, cpu: int) -> dict:
    pids = server.pids()
    before = cpu_ticks(pids)
    result = run_wrk(host, port, script, seconds, connections, cpu)
    used = cpu_ticks(pids) - before
    result["cpu_us_per_req"] = used / TICK * 1e6 / result["requests"] if result["requests"] else 0.0
    return result


def idle_memory(server, host: str, port: int, path: str, n: int) -> float:
    """KiB of server RSS per idle keep-alive connection (each served one request first)."""
    pids = server.pids()
    before = rss_kib(pids)
    conns = []
    request = f"GET {path} HTTP/1.1\r\nHost: bench\r\nRange: bytes=0-0\r\n\r\n".encode()
    sel = selectors.DefaultSelector()
    try:
        for _ in range(n):
            s = socket.create_connection((host, port))
            s.sendall(request)
            conns.append(s)
            s.setblocking(False)
            sel.register(s, selectors.EVENT_READ)
        pending = set(conns)
        deadline = time.monotonic() + 60
        while pending and time.monotonic() < deadline:
            for key, _ in sel.select(1):
                try:
                    if key.fileobj.recv(65536):
                        pending.discard(key.fileobj)
                except BlockingIOError:
                    pass
                sel.unregister(key.fileobj)
        time.sleep(0.5)
        after = rss_kib(server.pids())
    finally:
        for s in conns:
            s.close()
        sel.close()
    return (after - before) / n


# -- main -----------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=5.0, help="seconds per wrk run (default 5)")
    ap.add_argument("--reps", type=int, default=2, help="repetitions per workload (default 2)")
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--idle", type=int, default=IDLE_CONNECTIONS, help="idle connections (0: skip)")
    ap.add_argument("--workloads", default="2MiB,64KiB,1KiB,p99", help="comma-separated subset")
    args = ap.parse_args(argv)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if not shutil.which("wrk") or not Nginx.binary() or not shutil.which("taskset"):
        print("bench-edge needs wrk, nginx (nginx-light) and taskset", file=sys.stderr)
        return 2
    cores = sorted(os.sched_getaffinity(0))
    server_cpu, client_cpu = cores[0], cores[-1]
    work = Path(tempfile.mkdtemp(prefix="oca-bench-edge-"))
    try:
        return _run(args, work, server_cpu, client_cpu)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _run(args: argparse.Namespace, work: Path, server_cpu: int, client_cpu: int) -> int:
    config, nginx_root, content = make_content(work)
    scripts = lua_scripts(work, content)
    nginx = Nginx(work / "nginx", nginx_root, "127.0.0.1", _free_port(), cpu=server_cpu, access_log=True)
    nginx.start()
    started: list = [nginx]
    try:
        ours = Ours(config, server_cpu)
        started.append(ours)
        floor = Floor(nginx_root, server_cpu)
        started.append(floor)
    except BaseException:
        for server in started:
            server.stop()
        raise
    servers = {"nginx": (nginx, "127.0.0.1", nginx.port), "oca": (ours, ours.host, ours.port),
               "floor": (floor, "127.0.0.1", floor.port)}
    scripts["floor"] = scripts["oca"]   # the same request bytes as ours; the floor drops the query
    results: dict[str, dict[str, list[dict]]] = {s: {} for s in servers}
    try:
        for name, s in servers.items():   # warm both: page cache, fd caches, index caches
            measure(s[0], s[1], s[2], scripts[name]["2MiB"], 1, args.connections, client_cpu)
        for workload in args.workloads.split(","):
            conns = 16 if workload == "p99" else args.connections
            for _ in range(args.reps):
                for name, (srv, host, port) in servers.items():
                    r = measure(srv, host, port, scripts[name][workload], args.duration, conns, client_cpu)
                    results[name].setdefault(workload, []).append(r)
        idle = {"nginx": 0.0, "oca": 0.0}
        for name in ("nginx", "oca") if args.idle else ():
            srv, host, port = servers[name]
            path = "/big.mp4" if name == "nginx" else signed("/big.mp4", content["secret"])
            idle[name] = idle_memory(srv, host, port, path, args.idle)
    finally:
        for server in started:
            server.stop()
    summary = summarise(results, idle, args.workloads.split(","))
    hot = subprocess.run(["taskset", "-c", str(server_cpu), sys.executable, "-m", "bench.edge_hotpath"],
                         capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
    summary["hot_path"] = json.loads(hot)
    print_table(summary, args)
    print(json.dumps(summary, separators=(",", ":")))
    return 0


TARGETS = {"2MiB >= 1.0x": ("2MiB", "gbps", lambda r: r >= 1.0),
           "64KiB >= 0.9x": ("64KiB", "rps", lambda r: r >= 0.9),
           "1KiB >= 0.9x": ("1KiB", "rps", lambda r: r >= 0.9),
           "p99 <= 1.5x": ("p99", "p99_ms", lambda r: r <= 1.5)}


def summarise(results: dict, idle: dict, workloads: list[str]) -> dict:
    out: dict = {"workloads": {}, "idle_kib_per_conn": idle}
    for workload in workloads:
        runs = {name: results[name][workload] for name in ("nginx", "oca", "floor")}
        w: dict = {}
        metric = "gbps" if workload == "2MiB" else "rps"
        for key in (metric, "p50_ms", "p99_ms", "cpu_us_per_req"):
            w[key] = {name: statistics.median(r[key] for r in rs) for name, rs in runs.items()}
            for label, name in (("ratio", "oca"), ("floor_ratio", "floor")):   # per repetition, then the median
                w[key][label] = statistics.median(_ratio(b[key], a[key])
                                                  for a, b in zip(runs["nginx"], runs[name], strict=True))
        w["errors"] = any(r["errors"] for rs in runs.values() for r in rs)
        out["workloads"][workload] = w
    w = out["workloads"]
    for field, label in (("targets", "ratio"), ("floor_targets", "floor_ratio")):
        out[field] = {name: ok(w[wl][metric][label]) for name, (wl, metric, ok) in TARGETS.items() if wl in w}
    return out


def _ratio(a: float, b: float) -> float:
    return a / b if b else 0.0


def print_table(s: dict, args: argparse.Namespace) -> None:
    print(f"edge bench: {args.reps} x {args.duration:g}s per workload, wrk -t1 -c{args.connections} "
          f"(p99: -c16, 10 ms between requests per connection); servers on one core, wrk on the other")
    print(f"{'workload':<8} {'metric':<14} {'nginx':>12} {'oca':>12} {'oca/nginx':>10} {'floor':>12} "
          f"{'floor/nginx':>12}")
    for workload, w in s["workloads"].items():
        for key, label in (("gbps", "Gbit/s"), ("rps", "req/s"), ("p50_ms", "p50 ms"), ("p99_ms", "p99 ms"),
                           ("cpu_us_per_req", "CPU us/req")):
            if key in w:
                v = w[key]
                print(f"{workload:<8} {label:<14} {v['nginx']:>12.3f} {v['oca']:>12.3f} {v['ratio']:>9.2f}x "
                      f"{v['floor']:>12.3f} {v['floor_ratio']:>11.2f}x")
        if w["errors"]:
            print(f"{workload:<8} (wrk reported errors or non-2xx answers)")
    i = s["idle_kib_per_conn"]
    print(f"{'idle':<8} {'KiB/conn':<14} {i['nginx']:>12.2f} {i['oca']:>12.2f} "
          f"{_ratio(i['oca'], i['nginx']):>9.2f}x")
    h = s.get("hot_path")
    if h:
        print(f"hot path (in process, 1 KiB ranges, no network; stable on a shared machine): "
              f"{h['oca_us_per_req']} us/request = syscall floor {h['floor_us_per_req']} us + "
              f"our features {h['features_us_per_req']} us (Python path alone: {h['python_path_us_per_req']} us)")
    for target, ok in s["targets"].items():
        floor = "reached" if s["floor_targets"][target] else "NOT reached"
        print(f"target {target}: {'met' if ok else 'NOT met'} (by the featureless floor: {floor})")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


if __name__ == "__main__":
    sys.exit(main())
