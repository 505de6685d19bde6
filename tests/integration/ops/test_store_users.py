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
import shutil
import subprocess
import sys
import tempfile
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


def as_user(uid: int, *argv: str) -> subprocess.CompletedProcess[str]:
    """Run argv as uid (primary group = uid, supplementary group oca-store) with the units' UMask."""
    cmd = ["setpriv", f"--reuid={uid}", f"--regid={uid}", f"--groups={STORE_GID}", "--inh-caps=-all",
           "sh", "-c", 'umask 0007 && exec "$@"', "sh", *argv]
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": f"{REPO}:{SITE}", "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=env, cwd="/")


@pytest.fixture
def layout() -> Iterator[Path]:
    require("setpriv")
    probe = subprocess.run(["/usr/bin/python3", "-c", "import sys; print(sys.version_info[:2] == (3, 11))"],
                           capture_output=True, text=True, timeout=30)
    if probe.stdout.strip() != "True":
        pytest.skip("needs the system's Python 3.11 (/usr/bin/python3) to run as other users")
    # Not under pytest's tmp_path: its parents are mode 0700, which other users cannot traverse.
    root = Path(tempfile.mkdtemp(prefix="oca-store-users-"))
    root.chmod(0o755)
    try:
        for d in ("srv/oca/ssd0", "srv/oca/hdd0", "var/lib/oca/index", "etc/oca"):
            (root / d).mkdir(parents=True)
        for d in ("srv", "var", "var/lib", "etc"):
            (root / d).chmod(0o755)
        for d in ("srv/oca/ssd0", "srv/oca/hdd0", "var/lib/oca", "var/lib/oca/index"):
            os.chown(root / d, FILL, STORE_GID)
            (root / d).chmod(0o2770)
        (root / "srv/oca").chmod(0o755)
        conf = root / "etc/oca/oca.toml"
        conf.write_text(f"""
[tokens]
mode = "open"
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


def test_fill_publishes_edge_and_reporter_use_the_index(layout: Path) -> None:
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
    add = as_user(FILL, *OCA, "store", "add", "t1/avc-720p.mp4", str(src), "--tier", "ssd", "--config", conf)
    assert add.returncode == 0, add.stderr

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
