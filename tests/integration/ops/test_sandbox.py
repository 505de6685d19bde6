"""MemoryDenyWriteExecute=yes (every unit): the daemons' code and ffmpeg must not need W+X memory.

systemd implements it with seccomp; Linux ≥ 6.3 has the same rule as a process attribute,
`prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN)`, inherited across fork and execve. Each check sets it,
execs the real program, and first proves the rule is in force (a W+X mmap is refused). ctypes is
imported by oca.kernel_routes (reporter) and asyncpg (control plane): libffi's static trampolines
keep it working.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.ops.conftest import REPO, require, units

SANDBOX = str(Path(__file__).with_name("unit_sandbox.py"))
SERVICES = [u.name for u in units() if u.suffix == ".service"]

PROBE = """
import errno, os, socket
def err(fn):
    try:
        fn()
    except OSError as e:
        return errno.errorcode[e.errno]
    return "allowed"
print(err(lambda: socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)),
      err(lambda: os.chroot("/")),
      err(lambda: os.setpriority(os.PRIO_PROCESS, 0, 0)),
      err(lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM).close()))
"""

MDWE_EXEC = """
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN = 65, 1
if libc.prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0) != 0:
    sys.exit(77)   # kernel without PR_SET_MDWE
os.execvp(sys.argv[1], sys.argv[1:])
"""

DAEMON_CODE = """
import mmap
try:
    mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    raise SystemExit("W+X mapping allowed: MDWE is not in force")
except PermissionError:
    pass
import asyncio, ctypes, tempfile
import oca.cli, oca.report_cli, oca.kernel_routes, fill.cli, steering.cli, control_plane.cli
import asyncpg, lmdb, uvloop, orjson, pytricia, maxminddb, aiohttp, sqlalchemy
ctypes.CFUNCTYPE(ctypes.c_int)(lambda: 0)()
uvloop.install()
asyncio.run(asyncio.sleep(0))
with tempfile.TemporaryDirectory() as d:
    env = lmdb.open(d, map_size=1 << 20)
    with env.begin(write=True) as txn:
        txn.put(b"k", b"v")
    env.close()
print("ok")
"""


def in_unit(unit: str, *argv: str) -> list[str]:
    return ["/usr/bin/python3", SANDBOX, str(REPO / "systemd" / unit), *argv]


@pytest.fixture(scope="module", autouse=True)
def seccomp_available() -> None:
    if subprocess.run(["/usr/bin/python3", "-c", "import seccomp"], capture_output=True).returncode != 0:
        pytest.fail("python3-seccomp is missing: run scripts/bootstrap.sh test")


@pytest.mark.parametrize("unit", SERVICES)
def test_unit_sandbox_enforces_the_units_filters(unit: str) -> None:
    """The emulation the other tests rely on has teeth: what the unit forbids fails (even as root)."""
    proc = subprocess.run(in_unit(unit, "/usr/bin/python3", "-c", PROBE), capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    packet, chroot, setpriority, inet = proc.stdout.split()
    assert packet == "EAFNOSUPPORT"                   # RestrictAddressFamilies=
    assert chroot == "EPERM"                          # SystemCallFilter=~@privileged
    assert setpriority == ("allowed" if unit == "oca.service" else "EPERM")   # ~@resources
    assert inet == "allowed"


def under_mdwe(*argv: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-c", MDWE_EXEC, *argv], capture_output=True, text=True, timeout=120,
                          cwd=cwd)
    if proc.returncode == 77:
        pytest.skip("kernel without PR_SET_MDWE (Linux < 6.3)")
    return proc


def test_daemon_code_runs_without_write_execute_memory() -> None:
    proc = under_mdwe(sys.executable, "-c", DAEMON_CODE, cwd=REPO)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stdout + proc.stderr


def test_ffmpeg_packaging_runs_in_the_control_plane_sandbox(tmp_path: Path) -> None:
    """ffmpeg as oca-control.service starts it: the unit's seccomp filter and no W+X memory."""
    require("ffmpeg")
    out = tmp_path / "out.mp4"
    proc = under_mdwe(*in_unit("oca-control.service", "ffmpeg"), "-v", "error", "-y",
                      "-f", "lavfi", "-i", "testsrc=duration=1:size=320x240:rate=25",
                      "-f", "lavfi", "-i", "sine=duration=1", "-c:v", "libx264", "-c:a", "aac",
                      "-movflags", "+frag_keyframe+empty_moov", str(out))
    assert proc.returncode == 0, proc.stderr
    assert out.stat().st_size > 1000


def test_control_plane_migrates_in_its_sandbox(tmp_path: Path) -> None:
    conf = tmp_path / "oca-control.toml"
    conf.write_text(f'[database]\nurl = "sqlite:///{tmp_path}/control.db"\n'
                    '[auth]\noperator_token_files = []\n[geoip]\ntrusted_proxies = []\n')
    proc = under_mdwe(*in_unit("oca-control.service", sys.executable, "-m", "control_plane.cli", "db", "upgrade",
                               "--json", "--config", str(conf)), cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["applied"]


def test_origin_serves_under_its_units_filter(tmp_path: Path) -> None:
    """`oca serve --root --rescan` as oca-origin.service runs it (seccomp: ~@privileged ~@resources):
    it starts even where it may not raise its open-files limit, serves, and rescans."""
    import socket
    import time
    import urllib.request

    (tmp_path / "t1").mkdir()
    (tmp_path / "t1" / "a.mp4").write_bytes(b"a" * 1000)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = in_unit("oca-origin.service", sys.executable, "-m", "oca.cli", "serve", "--root", str(tmp_path),
                  "--listen", f"127.0.0.1:{port}", "--workers", "1", "--rescan", "200ms")
    log = tmp_path.parent / f"origin-{port}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)

    def get(path: str) -> int:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
                return r.status
        except urllib.error.HTTPError as e:
            return e.code
        except OSError:
            return 0

    def until(path: str, status: int) -> None:
        deadline = time.monotonic() + 30
        while get(path) != status:
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
    try:
        until("/t1/a.mp4", 200)
        (tmp_path / "t2").mkdir()
        (tmp_path / "t2" / "b.mp4").write_bytes(b"b" * 10)
        until("/t2/b.mp4", 200)
    finally:
        proc.terminate()
        assert proc.wait(timeout=30) == 0, log.read_text()
