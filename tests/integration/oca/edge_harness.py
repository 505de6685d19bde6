"""Helpers for the edge server's integration tests: a store with files, a running `oca serve`,
and a raw-socket HTTP/1.1 client that reads responses exactly (no HTTP library in between)."""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
SECRET1, SECRET2 = "first-secret-" + "x" * 30, "second-secret-" + "y" * 30


def wait_for(cond: Callable[[], object], timeout: float = 10.0, what: str = "condition") -> object:
    """Poll `cond` until it returns something truthy (no sleeps as synchronisation)."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def write_keys(path: Path, *, k1: str = "active", k2: str | None = None) -> None:
    text = f'[[keys]]\nid = "k1"\nsecret = "{SECRET1}"\nstate = "{k1}"\n'
    if k2:
        text += f'[[keys]]\nid = "k2"\nsecret = "{SECRET2}"\nstate = "{k2}"\n'
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def make_store(tmp: Path, files: dict[str, bytes], *, extra: str = "", tokens: str = "open",
               workers: int = 1) -> Path:
    """A store under `tmp` holding `files`; returns the path of its oca.toml."""
    from oca.config import load_oca_config
    from oca.store import Store, init_disks

    (tmp / "ssd").mkdir(exist_ok=True)
    (tmp / "hdd").mkdir(exist_ok=True)
    write_keys(tmp / "keys.toml")
    token_section = f'mode = "require"\nkeys_file = "{tmp}/keys.toml"' if tokens == "require" else 'mode = "open"'
    config = tmp / "oca.toml"
    config.write_text(f"""
[store]
index_path = "{tmp}/index"
default_tier = "ssd"
[[store.tiers.ssd.disks]]
path = "{tmp}/ssd"
capacity = "1GiB"
[[store.tiers.hdd.disks]]
path = "{tmp}/hdd"
capacity = "1GiB"
[server]
listen = "127.0.0.1:0"
workers = {workers}
drain_timeout = "20s"
[files]
refresh_interval = "50ms"
[tokens]
{token_section}
[log]
access_log = "{tmp}/access.log"
flush_interval = "50ms"
[admin]
listen = "127.0.0.1:0"
{extra}
""")
    cfg = load_oca_config(config)
    init_disks(cfg.store)
    src = tmp / "src"
    src.mkdir(exist_ok=True)
    with Store.open(cfg.store, cleanup=True) as store:
        for key, data in files.items():
            p = src / key.replace("/", "_")
            p.write_bytes(data)
            store.add_file(key, p, tier="hdd" if key.startswith("hdd/") else "ssd")
    return config


@dataclass
class Edge:
    """A running `oca serve` (supervisor + workers)."""

    proc: subprocess.Popen
    host: str
    port: int
    admin: str | None
    pids: list[int]
    stderr_path: Path
    log: list[str] = field(default_factory=list)

    @classmethod
    def start(cls, args: list[str], tmp: Path, timeout: float = 30.0) -> Edge:
        err = tmp / f"edge-stderr-{time.monotonic_ns()}.log"
        with open(err, "wb") as errf:
            proc = subprocess.Popen([sys.executable, "-m", "oca.cli", "serve", *args], cwd=REPO,
                                    stdout=subprocess.PIPE, stderr=errf)
        ready, _, _ = select.select([proc.stdout], [], [], timeout)
        line = proc.stdout.readline() if ready else b""
        if not line:
            proc.kill()
            proc.wait()
            proc.stdout.close()
            raise AssertionError(f"oca serve did not start: {err.read_text()}")
        info = json.loads(line)
        host, port = info["listen"].rsplit(":", 1)
        return cls(proc, host, int(port), info["admin"], info["pids"], err)

    def send(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise
            finally:
                self.proc.stdout.close()
        return self.proc.returncode

    def connect(self, timeout: float = 10.0) -> socket.socket:
        s = socket.create_connection((self.host, self.port), timeout=timeout)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return s

    def admin_get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://{self.admin}{path}", timeout=10) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def metric(self, name: str) -> float:
        """Sum of all samples whose name+labels text starts with `name` (0 when absent)."""
        _, text = self.admin_get("/metrics")
        total = 0.0
        for line in text.splitlines():
            if line.startswith(name) and not line.startswith("#"):
                total += float(line.rsplit(" ", 1)[1])
        return total


# -- raw HTTP/1.1 ---------------------------------------------------------------------------------
@dataclass
class Response:
    status: int
    reason: str
    headers: dict[str, str]          # lowercase names; repeated fields joined with ", "
    body: bytes
    raw_head: bytes

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


class Reader:
    """Reads responses off a socket exactly: head, then Content-Length bytes (none for HEAD/304/204)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock, self.buf = sock, b""

    def _fill(self) -> bool:
        data = self.sock.recv(1 << 20)
        self.buf += data
        return bool(data)

    def read(self, *, head_only: bool = False) -> Response:
        while b"\r\n\r\n" not in self.buf:
            if not self._fill():
                raise ConnectionError(f"connection closed before a response head (got {self.buf[:200]!r})")
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        _, status, reason = (lines[0].split(" ", 2) + [""])[:3]
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            key = name.strip().lower()
            headers[key] = f"{headers[key]}, {value.strip()}" if key in headers else value.strip()
        length = 0 if head_only or int(status) in (204, 304) else int(headers.get("content-length", "0"))
        while len(self.buf) < length:
            if not self._fill():
                raise ConnectionError(f"connection closed after {len(self.buf)} of {length} body bytes")
        body, self.buf = self.buf[:length], self.buf[length:]
        return Response(int(status), reason, headers, body, head)

    def closed(self, timeout: float = 5.0) -> bool:
        """True if the peer closes (EOF or reset) within `timeout` with no further bytes."""
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(1 << 16)
        except ConnectionResetError:
            return True
        except TimeoutError:
            return False
        self.buf += data
        return data == b""


def request(target: str, *, method: str = "GET", headers: dict[str, str] | None = None,
            version: str = "1.1", host: str | None = "edge") -> bytes:
    lines = [f"{method} {target} HTTP/{version}"]
    if host is not None:
        lines.append(f"Host: {host}")
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def fetch(edge: Edge, target: str, **kw: object) -> Response:
    """One request on a fresh connection."""
    head_only = kw.get("method") == "HEAD"
    with edge.connect() as s:
        s.sendall(request(target, **kw))  # type: ignore[arg-type]
        return Reader(s).read(head_only=head_only)


def parse_multipart(body: bytes, boundary: str) -> list[tuple[dict[str, str], bytes]]:
    """Split a multipart/byteranges body (RFC 9110 §14.6) into (part headers, part bytes)."""
    delim = b"--" + boundary.encode()
    assert body.startswith(delim + b"\r\n") and body.endswith(b"\r\n" + delim + b"--\r\n")
    parts = []
    for chunk in body[len(delim) + 2:-(len(delim) + 6)].split(b"\r\n" + delim + b"\r\n"):
        head, _, data = chunk.partition(b"\r\n\r\n")
        headers = {}
        for line in head.decode().split("\r\n"):
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        parts.append((headers, data))
    return parts
