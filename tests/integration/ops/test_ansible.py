"""Ansible: syntax, ansible-lint (production profile) and a real, idempotent apply on localhost.

The apply runs site.yml for the control-plane host and one appliance, each under its own temporary
prefix, with `oca_system=false`: no apt, users, mounts, systemd or PostgreSQL (docs/operations.md
"Testing the playbooks" lists exactly what runs). Then it runs again and must change nothing.
"""

from __future__ import annotations

import filecmp
import stat
import subprocess
import tomllib

import pytest

from control_plane.config import load_config as load_control_config
from fill.config import read_fill_config
from oca.config import Section, load_oca_config
from oca.reporter import read_reporter_config
from oca.tokens import load_key_ring
from steering.config import load_steering_config
from tests.integration.ops.conftest import (
    ANSIBLE_DIR,
    APPLY_HOSTS,
    REPO,
    LocalApply,
    ansible_env,
    inventory,
    require,
    run_playbook,
)

PLAYBOOKS = ("site.yml", "appliance.yml", "control_plane.yml")
CP, APPLIANCE = "cp1.example.net", "isp1-a"


@pytest.mark.parametrize("playbook", PLAYBOOKS)
def test_syntax_check(playbook: str) -> None:
    require("ansible-playbook")
    run = run_playbook(playbook, "--syntax-check")
    assert run.returncode == 0, run.output


def test_ansible_lint_production_profile() -> None:
    require("ansible-lint")
    proc = subprocess.run(["ansible-lint", "--profile", "production", "--nocolor", *PLAYBOOKS, "roles"],
                          cwd=ANSIBLE_DIR, env=ansible_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_first_apply_changes_every_host(local_apply: LocalApply) -> None:
    for host in APPLY_HOSTS:
        counts = local_apply.first.recap[host]
        assert counts["failed"] == 0 and counts["unreachable"] == 0
        assert counts["changed"] > 0, host


def test_second_apply_changes_nothing(local_apply: LocalApply) -> None:
    assert set(local_apply.second.recap) == set(APPLY_HOSTS)
    for host, counts in local_apply.second.recap.items():
        assert counts["changed"] == 0 and counts["failed"] == 0, (host, local_apply.second.output[-4000:])


def test_package_installed_into_the_venv(local_apply: LocalApply) -> None:
    for host in APPLY_HOSTS:
        venv = local_apply.prefix(host) / "opt/oca/venv"
        for script in ("oca", "oca-fill", "oca-steering", "oca-control"):
            assert (venv / "bin" / script).is_file(), (host, script)
        assert list(venv.glob("lib/python3*/site-packages/oca_stack-*.dist-info"))
        # steering's compiled scan and cached answer, the edge's compiled request path
        for module in ("steering/_groupscan", "steering/_answer", "oca/http/_serve"):
            assert list(venv.glob(f"lib/python3*/site-packages/{module}*.so")), (host, module)


def test_appliance_config_parses_with_the_daemons_own_parsers(local_apply: LocalApply) -> None:
    etc = local_apply.prefix(APPLIANCE) / "etc/oca"
    oca = load_oca_config(etc / "oca.toml")
    assert {d.tier for d in oca.store.disks} == {"ssd", "hdd"}
    assert oca.edge.tokens.mode == "require"
    assert (oca.edge.miss.action, oca.edge.miss.redirect_base) == ("redirect", "http://198.51.100.20:8080")
    assert oca.edge.cors.allowed_origins == ("https://player.example.com",)
    reporter = read_reporter_config(Section(oca.reporter, str(etc / "oca.toml")))
    assert reporter.appliance_id == APPLIANCE and reporter.route_table == 100
    assert reporter.link_capacity_bps == 20_000_000_000
    assert reporter.edge_ready_url == "http://127.0.0.1:9100/readyz"
    fill = read_fill_config(etc / "oca-fill.toml")
    assert fill.control_plane.appliance_id == APPLIANCE
    assert fill.store == oca.store
    ring = load_key_ring(str(etc / "keys.toml"))
    assert [k.id for k in ring.active()] == ["2026-11a"]


def test_store_initialised_and_index_group_writable(local_apply: LocalApply) -> None:
    prefix = local_apply.prefix(APPLIANCE)
    for name in ("data.mdb", "lock.mdb"):
        mode = stat.S_IMODE((prefix / "var/lib/oca/index" / name).stat().st_mode)
        assert mode == 0o660, (name, oct(mode))
    for disk in ("ssd0", "hdd0"):
        d = prefix / "srv/oca" / disk
        assert stat.S_IMODE(d.stat().st_mode) == 0o2770
        assert any(d.iterdir()), f"oca store init left {d} empty"


def test_secrets_are_not_world_readable(local_apply: LocalApply) -> None:
    files = [local_apply.prefix(APPLIANCE) / "etc/oca" / n for n in ("appliance.token", "keys.toml", "oca.toml")]
    files += [local_apply.prefix(CP) / "etc/oca" / n for n in ("keys.toml", "oca-control.toml",
                                                                 "steering.token", "operator-tokens/operator.token")]
    for f in files:
        assert stat.S_IMODE(f.stat().st_mode) == 0o640, f


def test_control_plane_and_steering_configs_parse(local_apply: LocalApply) -> None:
    etc = local_apply.prefix(CP) / "etc/oca"
    control = load_control_config(etc / "oca-control.toml")
    assert control.database.url.startswith("postgresql://oca_control:")
    assert control.signing.key_id == "2026-11a"
    assert len(control.auth.operator_token_files) == 2
    # Ingest writes only inside the unit's StateDirectory (ProtectSystem=strict).
    state = local_apply.prefix(CP) / "var/lib/oca-control"
    assert control.ingest.output_dir == state / "content" and control.ingest.work_dir == state / "ingest-work"
    assert control.playback.steering_url == "http://127.0.0.1:8100"   # steering runs on the same host
    steering = load_steering_config(etc / "oca-steering.toml")
    assert steering.snapshot.url.endswith("/api/v1/fleet/snapshot")
    assert steering.snapshot.token == (etc / "steering.token").read_text().strip()

def test_control_plane_database_created_and_migrated(local_apply: LocalApply) -> None:
    pg = local_apply.postgres
    assert pg.psql("SELECT rolsuper FROM pg_roles WHERE rolname = 'oca_control'").strip() == "f"
    assert pg.psql("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'oca'").strip() == "oca_control"
    # `oca-control db upgrade` ran over the rendered URL, as oca_control with the vault's password.
    assert int(pg.psql("SELECT count(*) FROM pg_tables WHERE tableowner = 'oca_control'", dbname="oca")) > 0


def test_units_installed_verbatim(local_apply: LocalApply) -> None:
    expected = {APPLIANCE: ("oca.service", "oca-report.service", "oca-fill.service"),
                CP: ("oca-control.service", "oca-origin.service", "oca-steering.service")}
    for host, names in expected.items():
        for name in names:
            installed = local_apply.prefix(host) / "etc/systemd/system" / name
            assert filecmp.cmp(installed, REPO / "systemd" / name, shallow=False), installed


def test_example_inventory_has_the_issue_fleet() -> None:
    inv = inventory()
    assert inv["control_plane"]["hosts"] == ["cp1.example.net"]
    assert inv["ixp_appliances"]["hosts"] == ["ixp-fra-1"]
    assert sorted(inv["embedded_appliances"]["hosts"]) == ["isp1-a", "isp2-a"]
    hostvars = inv["_meta"]["hostvars"]
    for host in ("ixp-fra-1", "isp1-a", "isp2-a"):
        assert hostvars[host]["oca_bgp_neighbors"], host


def test_logrotate_signals_the_edge(local_apply: LocalApply) -> None:
    lines = (local_apply.prefix(APPLIANCE) / "etc/logrotate.d/oca").read_text().splitlines()
    text = "\n".join(line for line in lines if not line.lstrip().startswith("#"))
    assert "--signal=SIGUSR1" in text and "copytruncate" not in text


def test_no_tomllib_errors_in_rendered_files(local_apply: LocalApply) -> None:
    for host in APPLY_HOSTS:
        for f in (local_apply.prefix(host) / "etc/oca").glob("*.toml"):
            tomllib.loads(f.read_text())
