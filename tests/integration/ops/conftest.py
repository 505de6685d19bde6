"""Fixtures for the operations tests: the repository's units, playbooks and a throwaway apply.

The Ansible apply runs the real roles against localhost with `oca_system=false` and every path
under a temporary `oca_prefix` (docs/operations.md "Testing the playbooks" says what that covers).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration.control_plane.pgcluster import PgCluster

REPO = Path(__file__).resolve().parents[3]
SYSTEMD_DIR = REPO / "systemd"
ANSIBLE_DIR = REPO / "ansible"
MONITORING_DIR = REPO / "docs" / "monitoring"
VENV_BIN = Path(sys.executable).parent
# The hosts the local apply provisions: the control plane + steering host and one appliance cover
# every role; `--tags bird` renders the BIRD configuration of every appliance.
APPLY_HOSTS = ("cp1.example.net", "isp1-a")
APPLIANCES = ("ixp-fra-1", "isp1-a", "isp2-a")
CP = "cp1.example.net"

_RECAP = re.compile(r"^(\S+)\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)


# Run a command as another uid with the checkout under test readable even when it lives in a private
# directory (`git clone . "$(mktemp -d)/c"`: /tmp/tmp.XXXX is mode 0700). In a private mount namespace:
# park the checkout on /dev/shm, mount a fresh /tmp, recreate the path there with traversable (not
# listable) directories, and move the checkout back onto it. A checkout outside /tmp stays as it is.
# $1 = the checkout; the rest is the command.
_CHECKOUT_VISIBLE = r"""
keep="$1"; shift
park=/dev/shm/oca-test-keep-$$
mkdir -p "$park" && mount -n --bind "$keep" "$park" || exit 94
mount -t tmpfs -o mode=1777 tmpfs /tmp || exit 92
if [ ! -d "$keep" ]; then
  mkdir -p "$keep" || exit 95
  d="$keep"; while [ "$d" != / ]; do chmod go+x "$d"; d=$(dirname "$d"); done
fi
mount -n --move "$park" "$keep" || exit 96
rmdir "$park" 2>/dev/null
exec "$@"
"""


def checkout_visible(argv: list[str]) -> list[str]:
    """`argv` wrapped so that another uid can read the checkout (see _CHECKOUT_VISIBLE)."""
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", _CHECKOUT_VISIBLE, "sh", str(REPO), *argv]


def units() -> list[Path]:
    return sorted(p for p in SYSTEMD_DIR.iterdir() if p.suffix in (".service", ".timer"))


def require(*commands: str) -> None:
    """Fail (not skip) when a tool listed in scripts/system-packages.txt is missing."""
    missing = [c for c in commands if shutil.which(c) is None]
    if missing:
        pytest.fail(f"missing {', '.join(missing)}: run scripts/bootstrap.sh test")


@dataclass(frozen=True)
class PlaybookRun:
    returncode: int
    output: str
    recap: dict[str, dict[str, int]]   # host -> {"ok", "changed", "unreachable", "failed"}


def ansible_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(ANSIBLE_CONFIG=str(ANSIBLE_DIR / "ansible.cfg"), ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0",
               ANSIBLE_LOCAL_TEMP=env.get("TMPDIR", "/tmp"), ANSIBLE_STDOUT_CALLBACK="default")
    return env


def run_playbook(playbook: str, *args: str, timeout: float = 300) -> PlaybookRun:
    proc = subprocess.run(["ansible-playbook", "-i", "inventory/example/hosts.yml", playbook, *args],
                          cwd=ANSIBLE_DIR, env=ansible_env(), capture_output=True, text=True, timeout=timeout)
    out = proc.stdout + proc.stderr
    recap = {m[1]: {"ok": int(m[2]), "changed": int(m[3]), "unreachable": int(m[4]), "failed": int(m[5])}
             for m in _RECAP.finditer(out)}
    return PlaybookRun(proc.returncode, out, recap)


def run_playbooks(playbooks: tuple[str, ...], *args: str, timeout: float = 300) -> PlaybookRun:
    """Run several playbooks at once; one combined result (recaps merged, first failure wins)."""
    procs = [subprocess.Popen(["ansible-playbook", "-i", "inventory/example/hosts.yml", pb, *args], cwd=ANSIBLE_DIR,
                              env=ansible_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for pb in playbooks]
    outputs = [p.communicate(timeout=timeout)[0] for p in procs]
    out = "\n".join(outputs)
    recap: dict[str, dict[str, int]] = {}
    for m in _RECAP.finditer(out):
        counts = {"ok": int(m[2]), "changed": int(m[3]), "unreachable": int(m[4]), "failed": int(m[5])}
        prev = recap.get(m[1])
        recap[m[1]] = counts if prev is None else {k: prev[k] + counts[k] for k in counts}
    code = next((p.returncode for p in procs if p.returncode), 0)
    return PlaybookRun(code, out, recap)


def local_apply_vars(prefix_root: Path, wheel: Path) -> list[str]:
    """Extra vars that turn the example inventory into a local, throwaway-prefix apply."""
    extra = {
        "oca_system": False,
        "ansible_connection": "local",
        "ansible_python_interpreter": "/usr/bin/python3",
        "oca_prefix": f"{prefix_root}/{{{{ inventory_hostname }}}}",
        "oca_appliance_serial": "100%",
        "oca_wheel": str(wheel),
        # The throwaway venv gets the package only: its dependencies come from PyPI on a real
        # host, which the test does not wait for. The commands the roles run (`oca store init`,
        # `oca-control db upgrade`, `oca-steering check-config`) use the project's development venv.
        "oca_pip_extra_args": "--no-deps",
        "oca_cli": str(VENV_BIN / "oca"),
        "oca_control_cli": str(VENV_BIN / "oca-control"),
        "oca_steering_cli": str(VENV_BIN / "oca-steering"),
    }
    return ["-e", json.dumps(extra)]


def inventory() -> dict:
    """The example inventory as `ansible-inventory --list` sees it (groups, _meta.hostvars)."""
    proc = subprocess.run(["ansible-inventory", "-i", "inventory/example/hosts.yml", "--list"],
                          cwd=ANSIBLE_DIR, env=ansible_env(), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.fixture(scope="session")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The oca-stack wheel, built from a copy of the sources (the checkout stays untouched)."""
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "setup.py"):
        shutil.copy2(REPO / name, src)
    for pkg in ("oca", "fill", "steering", "control_plane"):
        shutil.copytree(REPO / pkg, src / pkg, ignore=shutil.ignore_patterns("__pycache__", "*.so"))
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(src)],
                   check=True, capture_output=True, timeout=180)
    (built,) = out.glob("oca_stack-*.whl")
    return built


@dataclass(frozen=True)
class LocalApply:
    root: Path
    first: PlaybookRun
    second: PlaybookRun
    postgres: PgCluster

    def prefix(self, host: str) -> Path:
        return self.root / host


@pytest.fixture(scope="session")
def postgres() -> Iterator[PgCluster]:
    """A throwaway PostgreSQL cluster on a unix socket (tests/integration/control_plane/pgcluster.py)."""
    cluster = PgCluster()
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def local_apply(tmp_path_factory: pytest.TempPathFactory, wheel: Path, postgres: PgCluster) -> LocalApply:
    """The playbooks site.yml imports, applied twice on localhost, each host under its own prefix.

    control_plane.yml and appliance.yml run side by side (site.yml runs them one after the other)
    so the two hosts' applies share the test's wall time. The control plane's database is a real
    PostgreSQL: the role creates its role and database there (logging in as the cluster's superuser
    over its socket instead of peer-authenticated `postgres`) and migrates it.
    """
    require("ansible-playbook", "bird")
    root = tmp_path_factory.mktemp("apply")
    extra = json.loads(local_apply_vars(root, wheel)[1])
    extra.update(oca_control_db_backend="postgresql", oca_control_manage_db=True,
                 oca_control_db_host=str(postgres.sockdir), oca_control_db_port=postgres.port,
                 oca_control_pg_login_user=postgres.role, oca_control_pg_login_unix_socket=str(postgres.sockdir))
    args = ["-e", json.dumps(extra), "--limit", ",".join(APPLY_HOSTS)]
    first = run_playbooks(("control_plane.yml", "appliance.yml"), *args)
    assert first.returncode == 0, first.output[-6000:]
    second = run_playbooks(("control_plane.yml", "appliance.yml"), *args)
    assert second.returncode == 0, second.output[-6000:]
    return LocalApply(root, first, second, postgres)
