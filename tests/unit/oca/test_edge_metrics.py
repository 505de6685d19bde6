"""oca.metrics: worker counters, snapshots, the supervisor's aggregate and the Prometheus families."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from oca.metrics import Aggregate, EdgeCollector, WorkerMetrics, add_snapshots, empty_snapshot


def snap(n: int) -> dict:
    m = WorkerMetrics()
    m.responses[200] = n
    m.hits["ssd"] = n
    m.bytes_sent = 100 * n
    m.active = n
    m.observe(0.0002)
    return m.snapshot()


def test_add_snapshots() -> None:
    total = add_snapshots(snap(1), snap(2))
    assert total["responses"] == {"200": 3} and total["bytes_sent"] == 300 and total["active"] == 3
    assert sum(total["buckets"]) == 2
    assert add_snapshots(empty_snapshot(), snap(1))["hits"] == {"ssd": 1}


def test_counters_survive_a_dead_worker_but_its_connections_do_not() -> None:
    agg = Aggregate()
    agg.update(0, snap(5))
    agg.update(1, snap(1))
    agg.worker_exited(0)
    agg.update(0, snap(2))          # the replacement starts from zero
    total = agg.total()
    assert total["responses"] == {"200": 8} and total["active"] == 3


def test_exposition() -> None:
    state = {"totals": add_snapshots(snap(1), empty_snapshot()), "disks": {"ssd/0": "ok"}, "workers": 2,
             "restarts": 1, "reloads": 0, "ready": True}
    registry = CollectorRegistry(auto_describe=False)
    registry.register(EdgeCollector(lambda: state))
    text = generate_latest(registry).decode()
    for line in ('oca_http_responses_total{code="200"} 1.0', "oca_bytes_sent_total 100.0",
                 'oca_request_duration_seconds_bucket{le="0.00025"} 1.0', 'oca_disk_state{disk="ssd/0",state="ok"} 1.0',
                 "oca_worker_restarts_total 1.0", "oca_ready 1.0", 'oca_hits_total{tier="ssd"} 1.0'):
        assert line in text, line
