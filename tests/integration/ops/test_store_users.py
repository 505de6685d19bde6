"""The appliance's store shared by three unprivileged users, as the units and the role set it up.

oca-fill publishes, the edge (`oca`) writes hit counters and disk state into the LMDB index, the
reporter reads it; all three are in the group oca-store, the directories are setgid oca-store mode
2770, the units run with UMask=0007, and the role makes the index files 0660 after `oca store init`
(docs/operations.md "What runs where"). This test builds that layout with numeric ids (no users are
created on the test host) and runs the real `oca store` commands as each of them. Needs root.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.ops.conftest import require

pytestmark = [pytest.mark.root, pytest.mark.skipif(os.geteuid() != 0, reason="needs root to switch users")]

STORE_GID = 64900
FILL, EDGE, REPORT = 64901, 64902, 64903
REPO = Path(__file__).resolve().parents[3]
# The development interpreter may live under /root (mode 0700), out of reach of other users: run the
# system's Python 3.11 on the project's sources and the venv's packages instead.
SITE = next((Path(sys.prefix) / "lib").glob("python3.*/site-packages"))
OCA = ("/usr/bin/python3", "-m", "oca.cli")


SANDBOX = str(Path(__file__).with_name("unit_sandbox.py"))
UNIT_OF = {FILL: "oca-fill.service", EDGE: "oca.service", REPORT: "oca-report.service"}


def in_unit(uid: int, argv: tuple[str, ...] | list[str]) -> list[str]:
    """argv under the system-call filter and address families of uid's unit (unit_sandbox.py)."""
    return ["/usr/bin/python3", SANDBOX, str(REPO / "systemd" / UNIT_OF[uid]), *argv]


def as_user(uid: int, *argv: str) -> subprocess.CompletedProcess[str]:
    """Run argv as uid (primary group = uid, supplementary group oca-store) with the unit's UMask,
    no_new_privs, no capabilities and the unit's seccomp filter."""
    cmd = ["setpriv", f"--reuid={uid}", f"--regid={uid}", f"--groups={STORE_GID}", "--inh-caps=-all",
           "--no-new-privs", "sh", "-c", 'umask 0007 && exec "$@"', "sh", *in_unit(uid, argv)]
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": f"{REPO}:{SITE}", "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=env, cwd="/")


@pytest.fixture
def layout() -> Iterator[Path]:
    require("setpriv")
    if subprocess.run(["/usr/bin/python3", "-c", "import seccomp"], capture_output=True).returncode != 0:
        pytest.fail("python3-seccomp is missing: run scripts/bootstrap.sh test")
    probe = subprocess.run(["/usr/bin/python3", "-c", "import sys; print(sys.version_info[:2] == (3, 11))"],
                           capture_output=True, text=True, timeout=30)
    if probe.stdout.strip() != "True":
        pytest.skip("needs the system's Python 3.11 (/usr/bin/python3) to run as other users")
    # Not under pytest's tmp_path: its parents are mode 0700, which other users cannot traverse.
    root = Path(tempfile.mkdtemp(prefix="oca-store-users-"))
    root.chmod(0o755)
    try:
        for d in ("srv/oca/ssd0", "srv/oca/hdd0", "var/lib/oca/index", "etc/oca", "var/log/oca"):
            (root / d).mkdir(parents=True)
        for d in ("srv", "var", "var/lib", "etc"):
            (root / d).chmod(0o755)
        for d in ("srv/oca/ssd0", "srv/oca/hdd0", "var/lib/oca", "var/lib/oca/index"):
            os.chown(root / d, FILL, STORE_GID)
            (root / d).chmod(0o2770)
        (root / "srv/oca").chmod(0o755)
        os.chown(root / "var/log/oca", EDGE, EDGE)   # LogsDirectory=oca in oca.service
        conf = root / "etc/oca/oca.toml"
        conf.write_text(f"""
[tokens]
mode = "open"
[log]
access_log = "{root}/var/log/oca/access.log"
[store]
index_path = "{root}/var/lib/oca/index"
[[store.tiers.ssd.disks]]
path = "{root}/srv/oca/ssd0"
capacity = "1GiB"
[[store.tiers.hdd.disks]]
path = "{root}/srv/oca/hdd0"
capacity = "1GiB"
""")
        os.chown(root / "etc/oca", 0, STORE_GID)
        (root / "etc/oca").chmod(0o750)
        os.chown(conf, 0, STORE_GID)
        conf.chmod(0o640)
        yield root
    finally:
        shutil.rmtree(root)


def publish(layout: Path, key: str) -> bytes:
    """`oca store init` + the role's chmod, then `oca store add` as the fill agent; returns the body."""
    conf = str(layout / "etc/oca/oca.toml")
    init = as_user(FILL, *OCA, "store", "init", "--config", conf)
    assert init.returncode == 0, init.stderr
    # What the oca_appliance role does after `oca store init`.
    for name in ("data.mdb", "lock.mdb"):
        path = layout / "var/lib/oca/index" / name
        os.chown(path, FILL, STORE_GID)
        path.chmod(0o660)
    src = layout / "video.mp4"
    body = os.urandom(100_000)
    src.write_bytes(body)
    src.chmod(0o644)
    add = as_user(FILL, *OCA, "store", "add", key, str(src), "--tier", "ssd", "--config", conf)
    assert add.returncode == 0, add.stderr
    return body


def test_fill_publishes_edge_and_reporter_use_the_index(layout: Path) -> None:
    conf = str(layout / "etc/oca/oca.toml")
    body = publish(layout, "t1/avc-720p.mp4")

    # The edge reads the published file and writes the index (verify re-hashes and updates state).
    verify = as_user(EDGE, *OCA, "store", "verify", "--json", "--config", conf)
    assert verify.returncode == 0, verify.stderr
    (result,) = [json.loads(line) for line in verify.stdout.splitlines() if line.strip()]
    assert result["status"] == "ok", result
    listed = as_user(EDGE, *OCA, "store", "ls", "--json", "--config", conf)
    assert listed.returncode == 0, listed.stderr
    (entry,) = [json.loads(line) for line in listed.stdout.splitlines() if line.strip()]
    assert entry["sha256"] == hashlib.sha256(body).hexdigest()

    # The reporter opens the same index to report usage.
    usage = as_user(REPORT, *OCA, "store", "usage", "--json", "--config", conf)
    assert usage.returncode == 0, usage.stderr
    assert "ssd/0" in usage.stdout

    # Files the fill agent created stay inside the group: nothing is world-readable.
    for path in (layout / "srv/oca/ssd0").rglob("*"):
        assert path.stat().st_gid == STORE_GID, path
        assert not path.stat().st_mode & 0o007, path


def free_port(candidates: range) -> int:
    for port in random.sample(candidates, len(candidates)):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    pytest.fail("no free port")


def test_edge_binds_a_privileged_port_with_only_the_units_capability(layout: Path) -> None:
    """The edge as in oca.service: unprivileged uid, no_new_privs, bounding set and ambient set
    CAP_NET_BIND_SERVICE only; it binds a port below 1024 and serves a file the fill agent published."""
    body = publish(layout, "t1/avc-720p.mp4")
    port, admin = free_port(range(600, 1000)), free_port(range(20000, 60000))
    if port >= int(Path("/proc/sys/net/ipv4/ip_unprivileged_port_start").read_text()):
        pytest.skip("net.ipv4.ip_unprivileged_port_start lets anyone bind this port: nothing to prove")
    cmd = ["setpriv", f"--reuid={EDGE}", f"--regid={EDGE}", f"--groups={STORE_GID}", "--no-new-privs",
           "--bounding-set=-all,+net_bind_service", "--inh-caps=-all,+net_bind_service",
           "--ambient-caps=-all,+net_bind_service", "sh", "-c", 'umask 0007 && exec "$@"', "sh",
           *in_unit(EDGE, [*OCA, "serve", "--config", str(layout / "etc/oca/oca.toml"), "--listen",
                           f"127.0.0.1:{port}", "--workers", "2", "--admin", f"127.0.0.1:{admin}"])]
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": f"{REPO}:{SITE}", "PYTHONDONTWRITEBYTECODE": "1"}
    with open(layout / "edge.log", "wb") as log:
        proc = subprocess.Popen(cmd, env=env, cwd="/", stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, (layout / "edge.log").read_text()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{admin}/readyz", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, (layout / "edge.log").read_text()
            time.sleep(0.1)
        req = urllib.request.Request(f"http://127.0.0.1:{port}/t1/avc-720p.mp4", headers={"Range": "bytes=0-999"})
        with urllib.request.urlopen(req, timeout=10) as r:
            assert r.status == 206 and r.read() == body[:1000]
        access_log = layout / "var/log/oca/access.log"
        deadline = time.monotonic() + 30   # lines are flushed every [log] flush_interval (1 s)
        while not (access_log.exists() and "/t1/avc-720p.mp4 206 1000" in access_log.read_text()):
            assert time.monotonic() < deadline, "no access-log line"
            time.sleep(0.1)
        assert access_log.stat().st_uid == EDGE
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
