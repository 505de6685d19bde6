"""The appliance's store shared by three unprivileged users, as the units and the role set it up.

oca-fill publishes, the edge (`oca`) writes hit counters and disk state into the LMDB index, the
reporter reads it; all three are in the group oca-store, the directories are setgid oca-store mode
2770, the units run with UMask=0007, and the role makes the index files 0660 after `oca store init`
(docs/operations.md "What runs where"). This test builds that layout with numeric ids (no users are
created on the test host) and runs the real `oca store` commands and `oca serve` as each of them,
inside an emulation of their unit (mount namespace, setpriv, seccomp: see unit_command). Needs root.
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
ENV = {"PATH": "/usr/bin:/bin", "PYTHONPATH": f"{REPO}:{SITE}", "PYTHONDONTWRITEBYTECODE": "1"}

# ProtectSystem=strict with ReadWritePaths=, PrivateTmp=, ProtectHome=, in a private mount namespace:
# every mount read-only except the given paths (and /proc, /sys, /dev), fresh /tmp and /var/tmp,
# empty inaccessible /root and /home. $1 = the writable paths, colon-separated.
PROTECT_SYSTEM = r"""
rw="$1"; keep="$2"; shift 2
IFS=:; for p in $rw; do mount --bind "$p" "$p" || exit 90; done; unset IFS
# The checkout under test (code and .venv) must stay visible even when it lives under /tmp or /root,
# which the emulation replaces: park it on /dev/shm, then put it back at the same path.
mkdir -p /dev/shm/oca-test-keep && mount -n --bind "$keep" /dev/shm/oca-test-keep || exit 94
awk '{print $5}' /proc/self/mountinfo | sort -u | while read -r mp; do
  case "$mp" in /proc|/proc/*|/sys|/sys/*|/dev|/dev/*) continue;; esac
  keep_rw=; IFS=:; for p in $rw; do [ "$mp" = "$p" ] && keep_rw=1; done; unset IFS
  [ -n "$keep_rw" ] || mount -o remount,bind,ro "$mp" || exit 91
done
mount -t tmpfs -o mode=1777 tmpfs /tmp && mount -t tmpfs -o mode=1777 tmpfs /var/tmp || exit 92
mount -t tmpfs -o mode=000 tmpfs /root || exit 93
if [ -d /home ]; then mount -t tmpfs -o mode=000 tmpfs /home || exit 93; fi
if [ ! -d "$keep" ]; then
  mkdir -p "$keep" || exit 95
  d="$keep"; while [ "$d" != / ]; do chmod go+x "$d"; d=$(dirname "$d"); done   # traversable, not listable
fi
mount -n --move /dev/shm/oca-test-keep "$keep" || exit 96
exec "$@"
"""


def unit_paths(unit: str) -> tuple[list[str], list[str]]:
    """(ReadWritePaths=, directories systemd creates for the unit: State/Logs/RuntimeDirectory=)."""
    rw, created = [], []
    bases = {"StateDirectory": "/var/lib", "LogsDirectory": "/var/log", "RuntimeDirectory": "/run"}
    for line in (REPO / "systemd" / unit).read_text().splitlines():
        key, _, value = line.strip().partition("=")
        if key == "ReadWritePaths":
            rw += value.split()
        elif key in bases:
            created += [f"{bases[key]}/{v}" for v in value.split()]
    return rw, created


def unit_command(layout: Path, uid: int, argv: tuple[str, ...] | list[str], *, bind_service: bool = False) -> list[str]:
    """argv as uid's unit runs it, with every path of the unit mapped under `layout`: the unit's
    writable paths only (mount namespace), user and groups, UMask, no_new_privs, capabilities
    (CAP_NET_BIND_SERVICE for the edge), and the unit's seccomp filter (unit_sandbox.py)."""
    rw, created = unit_paths(UNIT_OF[uid])
    writable = [str(layout / p.lstrip("/")) for p in rw + created]
    caps = "-all,+net_bind_service" if bind_service else "-all"
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", PROTECT_SYSTEM, "sh", ":".join(writable),
            str(REPO), "setpriv", f"--reuid={uid}", f"--regid={uid}", f"--groups={STORE_GID}", "--no-new-privs",
            f"--bounding-set={caps}", f"--inh-caps={caps}", *([f"--ambient-caps={caps}"] if bind_service else []),
            "sh", "-c", 'umask 0007 && exec "$@"', "sh",
            "/usr/bin/python3", SANDBOX, str(REPO / "systemd" / UNIT_OF[uid]), *argv]


def as_user(layout: Path, uid: int, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(unit_command(layout, uid, argv), capture_output=True, text=True, timeout=60, env=ENV,
                          cwd="/")


@pytest.fixture
def layout() -> Iterator[Path]:
    require("setpriv")
    if subprocess.run(["/usr/bin/python3", "-c", "import seccomp"], capture_output=True).returncode != 0:
        pytest.fail("python3-seccomp is missing: run scripts/bootstrap.sh test")
    probe = subprocess.run(["/usr/bin/python3", "-c", "import sys; print(sys.version_info[:2] == (3, 11))"],
                           capture_output=True, text=True, timeout=30)
    if probe.stdout.strip() != "True":
        pytest.skip("needs the system's Python 3.11 (/usr/bin/python3) to run as other users")
    # Not under pytest's tmp_path: its parents are mode 0700, which other users cannot traverse, and
    # not under /tmp, which the PrivateTmp= emulation replaces.
    root = Path(tempfile.mkdtemp(prefix="oca-ops-test-", dir="/srv" if Path("/srv").is_dir() else "/var/lib"))
    root.chmod(0o755)
    try:
        for d in ("srv/oca/ssd0", "srv/oca/hdd0", "var/lib/oca/index", "etc/oca", "var/log"):
            (root / d).mkdir(parents=True)
        for d in ("srv", "var", "var/lib", "var/log", "etc"):
            (root / d).chmod(0o755)
        for uid, unit in UNIT_OF.items():   # what systemd creates (owned by the unit's user) at start
            for d in unit_paths(unit)[1]:
                (root / d.lstrip("/")).mkdir(parents=True, exist_ok=True)
                os.chown(root / d.lstrip("/"), uid, uid)
        for d in ("srv/oca/ssd0", "srv/oca/hdd0", "var/lib/oca", "var/lib/oca/index"):
            os.chown(root / d, FILL, STORE_GID)
            (root / d).chmod(0o2770)
        (root / "srv/oca").chmod(0o755)
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
    init = as_user(layout, FILL, *OCA, "store", "init", "--config", conf)
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
    add = as_user(layout, FILL, *OCA, "store", "add", key, str(src), "--tier", "ssd", "--config", conf)
    assert add.returncode == 0, add.stderr
    return body


def test_emulated_unit_can_write_only_its_paths(layout: Path) -> None:
    """The mount namespace really is read-only outside the unit's paths (the other tests rely on it)."""
    script = ('for p in "$@"; do if touch "$p" 2>/dev/null; then echo "$p writable"; else echo "$p read-only"; '
              'fi; done')
    outside = layout / "var/lib/not-the-units"   # the user may write here; the unit may not
    outside.mkdir()
    os.chown(outside, FILL, FILL)
    probes = [layout / "srv/oca/ssd0/probe", layout / "var/lib/oca-fill/probe", outside / "probe",
              layout / "var/log/oca/probe", Path("/tmp/probe")]
    proc = as_user(layout, FILL, "/bin/sh", "-c", script, "sh", *map(str, probes))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\n")[:5] == [
        f"{probes[0]} writable", f"{probes[1]} writable", f"{probes[2]} read-only", f"{probes[3]} read-only",
        "/tmp/probe writable"]
    assert not (outside / "probe").exists()


def test_fill_publishes_edge_and_reporter_use_the_index(layout: Path) -> None:
    conf = str(layout / "etc/oca/oca.toml")
    body = publish(layout, "t1/avc-720p.mp4")

    # The edge reads the published file and writes the index (verify re-hashes and updates state).
    verify = as_user(layout, EDGE, *OCA, "store", "verify", "--json", "--config", conf)
    assert verify.returncode == 0, verify.stderr
    (result,) = [json.loads(line) for line in verify.stdout.splitlines() if line.strip()]
    assert result["status"] == "ok", result
    listed = as_user(layout, EDGE, *OCA, "store", "ls", "--json", "--config", conf)
    assert listed.returncode == 0, listed.stderr
    (entry,) = [json.loads(line) for line in listed.stdout.splitlines() if line.strip()]
    assert entry["sha256"] == hashlib.sha256(body).hexdigest()

    # The reporter opens the same index to report usage.
    usage = as_user(layout, REPORT, *OCA, "store", "usage", "--json", "--config", conf)
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
    cmd = unit_command(layout, EDGE, [*OCA, "serve", "--config", str(layout / "etc/oca/oca.toml"), "--listen",
                                      f"127.0.0.1:{port}", "--workers", "2", "--admin", f"127.0.0.1:{admin}"],
                       bind_service=True)
    env = ENV
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
