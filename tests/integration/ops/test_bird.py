"""The appliance's BIRD 2 template, rendered by the real role for every example appliance.

`ansible-playbook appliance.yml --tags bird` renders bird.conf into a throwaway prefix per
appliance; the template task itself validates with `bird -p`, and the tests parse each file
again and check its shape: one eBGP session per neighbour, nothing exported to the ISP, the
learned prefixes into kernel table 100 only.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from tests.integration.ops.conftest import APPLIANCES, inventory, require, run_playbook


@pytest.fixture(scope="module")
def hostvars() -> dict:
    return inventory()["_meta"]["hostvars"]


def blocks(conf: str, head: str) -> dict[str, str]:
    """`protocol bgp NAME ... { ... }` → NAME → body (BIRD blocks nest one level here)."""
    out = {}
    for m in re.finditer(rf"^{head} (\S+)[^\n]*\{{\n(.*?)^\}}", conf, re.M | re.S):
        out[m[1]] = m[2]
    return out


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    require("ansible-playbook", "bird")
    root = tmp_path_factory.mktemp("bird")
    extra = {"oca_system": False, "ansible_connection": "local", "ansible_python_interpreter": "/usr/bin/python3",
             "oca_prefix": f"{root}/{{{{ inventory_hostname }}}}", "oca_appliance_serial": "100%"}
    run = run_playbook("appliance.yml", "--tags", "bird", "-e", json.dumps(extra))
    assert run.returncode == 0, run.output[-4000:]
    return {h: root / h / "etc/bird/bird.conf" for h in APPLIANCES}


@pytest.mark.parametrize("host", APPLIANCES)
def test_bird_parses_rendered_config(host: str, rendered: dict[str, Path]) -> None:
    proc = subprocess.run(["bird", "-p", "-c", str(rendered[host])], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("host", APPLIANCES)
def test_one_ebgp_session_per_neighbour_exporting_nothing(host: str, rendered: dict[str, Path],
                                                          hostvars: dict) -> None:
    conf = rendered[host].read_text()
    sessions = blocks(conf, "protocol bgp")
    neighbours = hostvars[host]["oca_bgp_neighbors"]
    assert len(sessions) == len(neighbours)
    for n in neighbours:
        body = sessions["isp_" + n["name"]]
        assert f"neighbor {n['address']} as {n['as']};" in body
        assert re.search(rf"import limit {n['max_prefixes']} action \w+;", body)
        assert body.count("export none;") == body.count("import filter") == 1
        assert "export all" not in body and "export filter" not in body


@pytest.mark.parametrize("host", APPLIANCES)
def test_kernel_table_100_only(host: str, rendered: dict[str, Path]) -> None:
    conf = rendered[host].read_text()
    kernels = blocks(conf, "protocol kernel")
    assert set(kernels) == {"kernel4", "kernel6"}
    for body in kernels.values():
        assert "kernel table 100;" in body and "learn off;" in body and "persist off;" in body
        assert "import none;" in body
    assert "krt_realm = bgp_path.last" in kernels["kernel4"]
    # No other protocol writes to the kernel: the main table is never touched.
    assert len(re.findall(r"^protocol kernel", conf, re.M)) == 2


def test_invalid_neighbour_is_rejected_before_the_file_is_written(tmp_path: Path) -> None:
    require("ansible-playbook", "bird")
    extra = {"oca_system": False, "ansible_connection": "local", "ansible_python_interpreter": "/usr/bin/python3",
             "oca_prefix": str(tmp_path),
             "oca_bgp_neighbors": [{"name": "r1", "address": "192.0.2.300", "as": 64500}]}
    run = run_playbook("appliance.yml", "--tags", "bird", "--limit", "isp2-a", "-e", json.dumps(extra))
    assert run.returncode != 0
    assert "failed to validate" in run.output
    assert not (tmp_path / "etc/bird/bird.conf").exists()
