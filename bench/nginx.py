"""Run nginx (Debian's nginx-light) as the reference server for the edge bench (EDGE_PERF.md config)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

CONFIG = """\
user root;
worker_processes 1;
worker_rlimit_nofile 20000;
daemon off;
pid {work}/nginx.pid;
error_log {work}/nginx-error.log warn;
events {{ worker_connections 12000; multi_accept on; }}
http {{
    default_type application/octet-stream;
    types {{ video/mp4 mp4; }}
    client_body_temp_path {work}/body;
    proxy_temp_path {work}/proxy;
    fastcgi_temp_path {work}/fastcgi;
    uwsgi_temp_path {work}/uwsgi;
    scgi_temp_path {work}/scgi;
    sendfile on;
    tcp_nopush off;
    tcp_nodelay on;
    keepalive_timeout 65;
    keepalive_requests 1000000;
    open_file_cache max=10000 inactive=60s;
    open_file_cache_valid 60s;
    access_log {access_log};
    server {{
        listen {host}:{port} reuseport backlog=1024;
        root {root};
        location / {{ }}
    }}
}}
"""


class Nginx:
    """nginx serving `root` on host:port, pinned with taskset to `cpu`; access log on or off."""

    def __init__(self, work: Path, root: Path, host: str, port: int, *, cpu: int, access_log: bool) -> None:
        self.work, self.root, self.host, self.port, self.cpu = work, root, host, port, cpu
        self.access_log = f"{work}/nginx-access.log" if access_log else "off"
        self.proc: subprocess.Popen | None = None

    @staticmethod
    def binary() -> str | None:
        return shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)

    def start(self) -> None:
        self.work.mkdir(parents=True, exist_ok=True)
        conf = self.work / "nginx.conf"
        conf.write_text(CONFIG.format(work=self.work, root=self.root, host=self.host, port=self.port,
                                      access_log=self.access_log))
        self.proc = subprocess.Popen(["taskset", "-c", str(self.cpu), self.binary(), "-c", str(conf),
                                      "-p", str(self.work)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nginx exited: {self.proc.stderr.read().decode()}")
            if self.pids()[1:]:
                return
            time.sleep(0.05)
        raise RuntimeError("nginx did not start")

    def pids(self) -> list[int]:
        """Master first, then its workers."""
        if self.proc is None:
            return []
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        try:
            kids = [int(p) for p in children.read_text().split()]
        except OSError:
            kids = []
        return [self.proc.pid, *kids]

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
