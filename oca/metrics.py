"""Edge metrics: plain counters in each worker, merged and exposed by the supervisor.

A worker counts into `WorkerMetrics` (attribute and dict increments: the hot path cannot afford a
metrics library's locks and label lookups), and sends a `snapshot()` to the supervisor about once a
second over its status pipe. The supervisor keeps the last snapshot of each live worker plus the
totals of workers that exited (`Aggregate`), and `EdgeCollector` turns them into Prometheus metric
families at scrape time. So /metrics lags the workers by at most one report interval, and counters
never go backwards when a worker is replaced.

Names (all prefixed ``oca_``): http_responses_total{code}, bytes_sent_total, active_connections,
request_duration_seconds (histogram), range_requests_total{kind}, token_failures_total{reason},
hits_total{tier}, misses_total, compiled_answers_total, sendfile_errors_total, disk_faults_total, timeouts_total{kind},
connections_rejected_total, access_log_dropped_lines_total, disk_state{disk,state}, workers,
worker_restarts_total, ready, reloads_total.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

DURATION_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                    1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_LABELLED = ("responses", "ranges", "token_failures", "hits", "timeouts")
_PLAIN = ("bytes_sent", "misses", "sendfile_errors", "disk_faults", "rejected", "log_dropped", "requests",
          "compiled")


class WorkerMetrics:
    """One worker's counters. Increment fields directly; `observe` a request's duration."""

    def __init__(self) -> None:
        self.responses: dict[int, int] = {}
        self.ranges: dict[str, int] = {}
        self.token_failures: dict[str, int] = {}
        self.hits: dict[str, int] = {}
        self.timeouts: dict[str, int] = {}
        self.bytes_sent = self.misses = self.sendfile_errors = self.disk_faults = 0
        self.rejected = self.log_dropped = self.requests = 0
        self.compiled = 0   # answers of the compiled request path (oca/http/_serve.c), also in `responses`
        self.active = 0
        self.buckets = [0] * (len(DURATION_BUCKETS) + 1)
        self.duration_sum = 0.0

    def observe(self, seconds: float) -> None:
        self.buckets[bisect_left(DURATION_BUCKETS, seconds)] += 1
        self.duration_sum += seconds

    def snapshot(self) -> dict[str, Any]:
        snap: dict[str, Any] = {name: {str(k): v for k, v in getattr(self, name).items()} for name in _LABELLED}
        snap.update({name: getattr(self, name) for name in _PLAIN})
        snap.update(active=self.active, buckets=list(self.buckets), duration_sum=self.duration_sum)
        return snap


def empty_snapshot() -> dict[str, Any]:
    return WorkerMetrics().snapshot()


def add_snapshots(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Sum two snapshots (pure)."""
    out: dict[str, Any] = {}
    for name in _LABELLED:
        merged = dict(a.get(name, {}))
        for k, v in b.get(name, {}).items():
            merged[k] = merged.get(k, 0) + v
        out[name] = merged
    for name in (*_PLAIN, "active", "duration_sum"):
        out[name] = a.get(name, 0) + b.get(name, 0)
    ab, bb = a.get("buckets") or [0] * (len(DURATION_BUCKETS) + 1), b.get("buckets") or []
    out["buckets"] = [x + (bb[i] if i < len(bb) else 0) for i, x in enumerate(ab)]
    return out


class Aggregate:
    """The supervisor's view: last snapshot per live worker + what exited workers had counted."""

    def __init__(self) -> None:
        self.live: dict[int, dict[str, Any]] = {}
        self.retired = empty_snapshot()

    def update(self, slot: int, snapshot: dict[str, Any]) -> None:
        self.live[slot] = snapshot

    def worker_exited(self, slot: int) -> None:
        snap = self.live.pop(slot, None)
        if snap is not None:
            snap = dict(snap, active=0)  # its connections are gone with it
            self.retired = add_snapshots(self.retired, snap)

    def total(self) -> dict[str, Any]:
        total = self.retired
        for snap in self.live.values():
            total = add_snapshots(total, snap)
        return total


class EdgeCollector:
    """prometheus_client collector: builds the families from `source()` at scrape time."""

    def __init__(self, source: Callable[[], dict[str, Any]]) -> None:
        self.source = source

    def collect(self) -> Iterator[Any]:
        s = self.source()
        t = s["totals"]
        yield _labelled(CounterMetricFamily, "oca_http_responses", "Responses sent, by status code",
                        "code", t["responses"])
        yield CounterMetricFamily("oca_bytes_sent", "Body bytes sent", value=t["bytes_sent"])
        yield GaugeMetricFamily("oca_active_connections", "Open client connections", value=t["active"])
        buckets, acc = [], 0
        for bound, n in zip((*DURATION_BUCKETS, float("inf")), t["buckets"], strict=True):
            acc += n
            buckets.append(("+Inf" if bound == float("inf") else repr(bound), acc))
        yield HistogramMetricFamily("oca_request_duration_seconds",
                                    "From the end of the request head to the last byte handed to the kernel",
                                    buckets=buckets, sum_value=t["duration_sum"])
        yield _labelled(CounterMetricFamily, "oca_range_requests", "GETs of files by range outcome",
                        "kind", t["ranges"])
        yield _labelled(CounterMetricFamily, "oca_token_failures", "Rejected URL tokens, by reason",
                        "reason", t["token_failures"])
        yield _labelled(CounterMetricFamily, "oca_hits", "Files served (200/206), by tier", "tier", t["hits"])
        yield CounterMetricFamily("oca_misses", "Requests for keys not servable here", value=t["misses"])
        yield CounterMetricFamily("oca_sendfile_errors", "sendfile failures that were not the client leaving",
                                  value=t["sendfile_errors"])
        yield CounterMetricFamily("oca_disk_faults", "Files quarantined because reading them failed",
                                  value=t["disk_faults"])
        yield _labelled(CounterMetricFamily, "oca_timeouts", "Connections closed by a timeout", "kind",
                        t["timeouts"])
        yield CounterMetricFamily("oca_compiled_answers", "Responses written by the compiled request path "
                                  "(also counted in oca_http_responses_total)", value=t["compiled"])
        yield CounterMetricFamily("oca_connections_rejected", "Connections over the per-worker limit",
                                  value=t["rejected"])
        yield CounterMetricFamily("oca_access_log_dropped_lines", "Access-log lines dropped (log stalled)",
                                  value=t["log_dropped"])
        disk = GaugeMetricFamily("oca_disk_state", "1 for the disk's current state", labels=["disk", "state"])
        for disk_id, state in sorted(s["disks"].items()):
            disk.add_metric([disk_id, state], 1)
        yield disk
        yield GaugeMetricFamily("oca_workers", "Worker processes running", value=s["workers"])
        yield CounterMetricFamily("oca_worker_restarts", "Workers restarted after dying", value=s["restarts"])
        yield CounterMetricFamily("oca_reloads", "SIGHUP reloads applied", value=s["reloads"])
        yield GaugeMetricFamily("oca_ready", "1 when /readyz says ready", value=1 if s["ready"] else 0)


def _labelled(family: Any, name: str, doc: str, label: str, values: dict[str, int]) -> Any:
    m = family(name, doc, labels=[label])
    for k, v in sorted(values.items()):
        m.add_metric([k], v)
    return m
