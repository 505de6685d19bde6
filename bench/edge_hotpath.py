"""CPU per request of the edge's serving path, in process, without the network: a stable figure.

The wrk bench's req/s and latency ratios depend on who gets the CPU on a shared machine; this one
does not. It feeds 1 KiB range requests into a real `EdgeProtocol` (handler, metrics, access log on,
a store-backed index like an appliance's) whose socket is one end of a Unix socket pair, drains the
other end, and measures thread CPU time per request — with the compiled request path (as served)
and without it (`[server] compiled_path = false`: the Python path). The "floor" runs the same
syscalls (parse with httptools, send the head with MSG_MORE, sendfile the body, drain) with no
features at all, so `oca - floor` is what our features cost.

    python -m bench.edge_hotpath        (also printed by `python -m bench.edge`)
"""

from __future__ import annotations

import gc
import json
import os
import random
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httptools

FILE_SIZE = 4 * 1024 * 1024


class SocketTransport:
    """The part of a uvloop transport `EdgeProtocol` uses, over a plain non-blocking socket whose
    buffer never fills here (also used by tests/unit/oca/test_compiled_answer.py)."""

    def __init__(self, sock: socket.socket, peer: tuple[str, int] = ("127.0.0.1", 1)) -> None:
        self.sock, self.peer = sock, peer

    def get_extra_info(self, name: str, default: object = None) -> object:
        return {"socket": self.sock, "peername": self.peer}.get(name, default)

    def write(self, data: bytes) -> None:
        self.sock.sendall(data)

    def get_write_buffer_size(self) -> int:
        return 0

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def close(self) -> None:
        pass

    abort = pause_reading = resume_reading = close


def _pair() -> tuple[socket.socket, socket.socket]:
    a, b = socket.socketpair()
    for s in (a, b):
        s.setblocking(False)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    return a, b


def _drain(b: socket.socket) -> None:
    try:
        while b.recv(1 << 20):
            pass
    except BlockingIOError:
        pass


def _requests(n: int) -> list[bytes]:
    rnd = random.Random(7)
    return [f"GET /f.mp4 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nRange: bytes={o}-{o + 1023}\r\n\r\n".encode()
            for o in (rnd.randrange(0, FILE_SIZE - 1024) for _ in range(n))]


def _per_request(step, reqs: list[bytes], b: socket.socket, n: int) -> float:  # noqa: ANN001
    t0 = time.thread_time()
    for i in range(n):
        step(reqs[i % len(reqs)])
        _drain(b)
    return (time.thread_time() - t0) / n * 1e6


def store_toml(work: Path, capacity: str) -> str:
    """The [store] section of a one-disk store (an ssd tier) under `work`; makes the disk directory."""
    (work / "ssd").mkdir()
    return f"""
[store]
index_path = "{work}/index"
default_tier = "ssd"
[[store.tiers.ssd.disks]]
path = "{work}/ssd"
capacity = "{capacity}"
"""


def _store(work: Path, source: Path):  # noqa: ANN202
    """A one-disk store holding `source` as key f.mp4, opened like a worker opens it (the appliance's
    index: cached descriptors are not re-checked per request, unlike `--root` directories)."""
    from oca.config import load_oca_config
    from oca.files import StoreSource
    from oca.store import Store, init_disks

    (work / "oca.toml").write_text(store_toml(work, "1GiB") + '[tokens]\nmode = "open"\n')
    config = load_oca_config(work / "oca.toml")
    init_disks(config.store)
    with Store.open(config.store, cleanup=True) as store:
        store.add_file("f.mp4", source)
    return StoreSource(Store.open(config.store, cleanup=False))


def measure(root: Path, n: int = 20000, reps: int = 5) -> dict[str, float]:
    from oca.accesslog import AccessLog
    from oca.config import Section, read_edge_config
    from oca.files import FdCache, IndexView
    from oca.http.handler import Context
    from oca.http.protocol import EdgeProtocol, Shared
    from oca.http.response import Clock
    from oca.metrics import WorkerMetrics

    reqs = _requests(1000)
    source = _store(root.parent, root / "f.mp4")
    protocols, logs, pairs = {}, [], []
    for name, compiled_path in (("compiled", True), ("python", False)):
        config = read_edge_config(Section({"tokens": {"mode": "open"}, "server": {"compiled_path": compiled_path}},
                                          "bench"))
        fds = FdCache(64)
        ctx = Context(config, None, IndexView(source, fds), Clock())
        shared = Shared(ctx, fds, WorkerMetrics(), AccessLog(root.parent / f"hotpath-{name}.log"))
        a, b = _pair()
        proto = EdgeProtocol(shared)
        proto.connection_made(SocketTransport(a))  # type: ignore[arg-type]
        protocols[name] = (proto, b)
        logs.append(shared.access)
        pairs += [a, b]

    fa, fb = _pair()
    fd = os.open(root / "f.mp4", os.O_RDONLY)
    parser = httptools.HttpRequestParser(type("P", (), {"on_url": lambda s, u: None,
                                                        "on_header": lambda s, n, v: None})())
    head = b"HTTP/1.1 206 Partial Content\r\n" + b"X: y\r\n" * 8 + b"\r\n"

    def floor(data: bytes) -> None:
        parser.feed_data(data)
        fa.send(head, socket.MSG_MORE)
        os.sendfile(fa.fileno(), fd, 1000, 1024)

    gc.collect()
    gc.freeze()
    def median(step, b: socket.socket) -> float:  # noqa: ANN001
        _per_request(step, reqs, b, 2000)
        return statistics.median(_per_request(step, reqs, b, n) for _ in range(reps))

    try:
        ours = median(protocols["compiled"][0].data_received, protocols["compiled"][1])
        python = median(protocols["python"][0].data_received, protocols["python"][1])
        bare = median(floor, fb)
    finally:
        for log in logs:
            log.close()
        source.close()
        os.close(fd)
        for s in (*pairs, fa, fb):
            s.close()
    return {"oca_us_per_req": round(ours, 2), "floor_us_per_req": round(bare, 2),
            "features_us_per_req": round(ours - bare, 2), "python_path_us_per_req": round(python, 2)}


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="oca-hotpath-") as tmp:
        root = Path(tmp) / "root"
        root.mkdir()
        (root / "f.mp4").write_bytes(os.urandom(FILE_SIZE))
        result = measure(root)
    print(f"hot path, 1 KiB ranges, in process: oca {result['oca_us_per_req']} us/request, "
          f"syscall floor {result['floor_us_per_req']} us, our features {result['features_us_per_req']} us "
          f"(the Python path alone: {result['python_path_us_per_req']} us/request)")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
