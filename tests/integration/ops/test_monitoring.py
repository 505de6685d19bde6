"""docs/monitoring: the alert rules (promtool check + promtool unit tests) and the Grafana dashboards.

Every metric an alert or a dashboard queries must be one the daemons export: the names are taken
from the code (the strings passed to prometheus_client), so a renamed metric breaks this test
instead of silently emptying a panel. node_exporter's `node_*` and Prometheus' `up` are external.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from tests.integration.ops.conftest import MONITORING_DIR, REPO, require

ALERTS = MONITORING_DIR / "alerts.yml"
DASHBOARDS = sorted(MONITORING_DIR.glob("dashboard-*.json"))
# The issue's list: appliance down / not reporting, disk failed, tier nearly full, high 5xx, token
# failure spike, fill behind schedule, steering to origin above a threshold.
REQUIRED_ALERTS = {"OcaApplianceDown", "OcaFleetReportsMissing", "OcaDiskFailed", "OcaTierNearlyFull",
                   "OcaHigh5xxRate", "OcaTokenFailureSpike", "OcaFillBehindSchedule", "OcaSteeringToOriginHigh"}
EXTERNAL = re.compile(r"^(node_|up$)")
_SUFFIX = re.compile(r"_(total|bucket|sum|count|created)$")
_GRAFANA_VARS = {"$__rate_interval": "5m", "$instance": "x", "$fill_instance": "x", "$node_instance": "x"}


def exported_metrics() -> set[str]:
    """Metric names the daemons register, without the `_total` prometheus_client appends."""
    names = set()
    for pkg in ("oca", "fill", "steering", "control_plane"):
        for src in (REPO / pkg).rglob("*.py"):
            names.update(re.findall(r"[\"'](oca_[a-z0-9_]+)[\"']", src.read_text()))
    return {_SUFFIX.sub("", n) if n.endswith("_total") else n for n in names}


def alert_exprs() -> dict[str, str]:
    """alert name → expr, from alerts.yml as written (one line, or a `>-` block)."""
    text = ALERTS.read_text()
    out = {}
    for m in re.finditer(r"^\s*- alert: (\w+)\n(.*?)(?=^\s*- alert: |\Z)", text, re.M | re.S):
        block = re.search(r"^(\s*)expr: (?:>-\n((?:\1\s+.*\n)+)|(.*)\n)", m[2], re.M)
        assert block, m[1]
        out[m[1]] = " ".join((block[2] or block[3]).split())
    return out


def dashboard_exprs(path: Path) -> list[str]:
    board = json.loads(path.read_text())
    return [t["expr"] for p in board["panels"] for t in p.get("targets", [])]


def referenced_metrics(expr: str) -> set[str]:
    without_strings = re.sub(r'"[^"]*"', '""', expr)
    names = set(re.findall(r"\b([a-z_][a-z0-9_]*)\s*(?:\{|\[|\)|$|\s|==|<|>|\*|/)", without_strings))
    functions = {"sum", "by", "rate", "increase", "count", "max", "time", "vector", "histogram_quantile", "and",
                 "or", "le", "on", "without", "instance", "route", "family", "code", "tier", "reason", "outcome",
                 "kind", "source_kind", "mountpoint", "unless", "ignoring"}
    return {n for n in names if n not in functions and not n.isdigit()}


def test_promtool_check_rules() -> None:
    require("promtool")
    proc = subprocess.run(["promtool", "check", "rules", str(ALERTS)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_promtool_unit_tests_fire_each_alert() -> None:
    require("promtool")
    proc = subprocess.run(["promtool", "test", "rules", "alerts_test.yml"], cwd=MONITORING_DIR,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    tested = set(re.findall(r"alertname: (\w+)", (MONITORING_DIR / "alerts_test.yml").read_text()))
    assert tested == set(alert_exprs()), "every alert needs a promtool unit test"


def test_required_alerts_exist() -> None:
    assert set(alert_exprs()) >= REQUIRED_ALERTS


def test_alerts_query_only_exported_metrics() -> None:
    exported = exported_metrics()
    for alert, expr in alert_exprs().items():
        for name in referenced_metrics(expr):
            if not EXTERNAL.match(name):
                assert _SUFFIX.sub("", name) in exported, f"{alert}: {name} is not exported by any daemon"


@pytest.mark.parametrize("path", DASHBOARDS, ids=[p.name for p in DASHBOARDS])
def test_dashboard_is_grafana_json_with_valid_queries(path: Path, tmp_path: Path) -> None:
    require("promtool")
    board = json.loads(path.read_text())
    assert board["uid"] and board["title"] and board["panels"]
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    exprs = dashboard_exprs(path)
    assert exprs
    # promtool parses PromQL when it checks recording rules: one rule per panel query.
    rules = ["groups:", "  - name: dashboard", "    rules:"]
    for n, expr in enumerate(exprs):
        for var, value in _GRAFANA_VARS.items():
            expr = expr.replace(var, value)
        rules += [f"      - record: dashboard:query:{n}", f"        expr: {json.dumps(expr)}"]
    rules_file = tmp_path / "rules.yml"
    rules_file.write_text("\n".join(rules) + "\n")
    proc = subprocess.run(["promtool", "check", "rules", str(rules_file)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    exported = exported_metrics()
    for expr in exprs:
        for name in referenced_metrics(expr):
            if not EXTERNAL.match(name):
                assert _SUFFIX.sub("", name) in exported, f"{path.name}: {name} is not exported by any daemon"


def test_appliance_dashboard_covers_the_issue_panels() -> None:
    board = json.loads((MONITORING_DIR / "dashboard-appliance.json").read_text())
    text = json.dumps(board)
    for metric in ("oca_bytes_sent_total", "oca_http_responses_total", "oca_active_connections", "oca_hits_total",
                   "oca_fill_bytes_fetched_total", "oca_fill_items_total"):
        assert metric in text, metric


def test_example_prometheus_config_is_valid() -> None:
    require("promtool")
    proc = subprocess.run(["promtool", "check", "config", "prometheus.yml"], cwd=MONITORING_DIR,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    jobs = set(re.findall(r"job_name: ([\w-]+)", (MONITORING_DIR / "prometheus.yml").read_text()))
    used = set(re.findall(r'job="([\w-]+)"', ALERTS.read_text()))
    assert used <= jobs
