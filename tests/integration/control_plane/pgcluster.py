"""A throwaway PostgreSQL cluster for tests: initdb + pg_ctl from /usr/lib/postgresql/*/bin, run as an
unprivileged user (PostgreSQL refuses to run as root), listening only on a unix socket in a temp dir.

Other test packages may import `PgCluster` too. Missing binaries are a test FAILURE with the reason,
never a skip: the project promises PostgreSQL is tested for real.
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

TEST_USER = "oca-pgtest"


def _bindir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        pytest.fail("PostgreSQL server binaries not found in /usr/lib/postgresql/*/bin: "
                    "apt-get install postgresql (listed in scripts/system-packages.txt)", pytrace=False)
    return Path(found[-1]).parent


def _run_user() -> pwd.struct_passwd | None:
    """The user the server runs as: None (ourselves) unless we are root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", TEST_USER):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", TEST_USER],
                   check=True, capture_output=True)
    return pwd.getpwnam(TEST_USER)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PgCluster:
    def __init__(self) -> None:
        self.bindir = _bindir()
        self.user = _run_user()
        self.base = Path(tempfile.mkdtemp(prefix="oca-pg-"))
        self.data, self.sockdir, self.logfile = self.base / "data", self.base / "sock", self.base / "server.log"
        self.sockdir.mkdir()
        if self.user is not None:
            for p in (self.base, self.sockdir):
                os.chown(p, self.user.pw_uid, self.user.pw_gid)
        self.port = _free_port()
        self.role = "oca"
        self._names = itertools.count(1)

    def _as_user(self, argv: list[str]) -> subprocess.CompletedProcess:
        kwargs = {}
        if self.user is not None:
            kwargs = {"user": self.user.pw_uid, "group": self.user.pw_gid, "extra_groups": []}
        return subprocess.run(argv, capture_output=True, text=True, cwd=self.base, **kwargs)

    def start(self) -> None:
        r = self._as_user([str(self.bindir / "initdb"), "-D", str(self.data), "-U", self.role, "--auth=trust",
                           "-E", "UTF8", "--no-sync", "--locale=C"])
        if r.returncode != 0:
            pytest.fail(f"initdb failed: {r.stderr or r.stdout}", pytrace=False)
        opts = (f"-p {self.port} -k {self.sockdir} -c listen_addresses='' -c fsync=off "
                "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
        r = self._as_user([str(self.bindir / "pg_ctl"), "-D", str(self.data), "-o", opts, "-l",
                           str(self.logfile), "-w", "-t", "60", "start"])
        if r.returncode != 0:
            log = self.logfile.read_text() if self.logfile.exists() else ""
            pytest.fail(f"pg_ctl start failed: {r.stderr or r.stdout}\n{log}", pytrace=False)

    def stop(self) -> None:
        self._as_user([str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop"])
        shutil.rmtree(self.base, ignore_errors=True)

    def psql(self, sql: str, dbname: str = "postgres") -> str:
        r = subprocess.run([str(self.bindir / "psql"), "-h", str(self.sockdir), "-p", str(self.port), "-U",
                            self.role, "-d", dbname, "-v", "ON_ERROR_STOP=1", "-Atc", sql],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"psql failed: {r.stderr}")
        return r.stdout

    def new_database(self, prefix: str = "t") -> str:
        """A fresh, empty database; returns its postgresql:// URL (unix socket)."""
        name = f"{prefix}{os.getpid()}_{next(self._names)}"
        self.psql(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def url(self, dbname: str) -> str:
        return f"postgresql://{self.role}@/{dbname}?host={self.sockdir}&port={self.port}"
