"""Prometheus metrics of the control plane, on a registry passed in (tests use their own).

With several workers (`server.workers`) prometheus_client runs in multiprocess mode: the supervisor
sets PROMETHEUS_MULTIPROC_DIR for the workers, each writes its values there, and /metrics from any
of them adds every worker's up (the pending-records gauge: the sum over live workers)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from control_plane import fleet

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class ControlMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.responses = Counter("oca_control_http_responses_total", "HTTP responses by route and status",
                                 ["route", "method", "code"], registry=r)
        self.latency = Histogram("oca_control_http_request_duration_seconds", "Request handling time",
                                 ["route"], registry=r,
                                 buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5))
        self.telemetry_records = Counter("oca_control_telemetry_records_total", "Telemetry records accepted",
                                         ["kind"], registry=r)
        self.telemetry_rejected = Counter("oca_control_telemetry_backpressure_total",
                                          "Telemetry records refused with 503 because the backlog was full",
                                          registry=r)
        self.telemetry_pending = Gauge("oca_control_telemetry_pending_records",
                                       "Telemetry records accepted and not yet flushed", registry=r,
                                       multiprocess_mode="livesum")
        self.flushes = Counter("oca_control_telemetry_flushes_total", "Telemetry flushes by result",
                               ["result"], registry=r)
        self.flush_seconds = Histogram("oca_control_telemetry_flush_duration_seconds", "Telemetry flush time",
                                       registry=r)
        self.reports = Counter("oca_control_appliance_reports_total", "Appliance reports by outcome",
                               ["outcome"], registry=r)
        self.manifest_seconds = Histogram("oca_control_fill_manifest_build_seconds",
                                          "Time to plan and render one fill manifest", registry=r,
                                          buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
        self.config_reloads = Counter("oca_control_config_reloads_total", "SIGHUP reloads by result",
                                      ["result"], registry=r)

        self._response_children: dict[tuple[str, str, int], tuple] = {}
        self._record_children: dict[str, object] = {}

    # The hot paths reuse labelled children: `labels()` is a locked lookup on every call.
    def response_children(self, route: str, method: str, status: int) -> tuple:
        """(count(), observe(seconds)) for one route, method and status."""
        key = (route, method, status)
        found = self._response_children.get(key)
        if found is None:
            found = self._response_children[key] = (self.responses.labels(route, method, str(status)).inc,
                                                    self.latency.labels(route).observe)
        return found

    def record_counter(self, kind: str):
        found = self._record_children.get(kind)
        if found is None:
            found = self._record_children[kind] = self.telemetry_records.labels(kind).inc
        return found

    def render(self, *extra: Collector) -> bytes:
        """The exposition text: this process's metrics, or with several workers (control_plane/workers.py)
        every worker's values added up; then `extra` collectors (read from the database at scrape time)."""
        path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        if path:
            registry = CollectorRegistry()
            MultiProcessCollector(registry, path)
        else:
            registry = self.registry
        text = generate_latest(registry)
        if extra:
            registry = CollectorRegistry()
            for collector in extra:
                registry.register(collector)
            text += generate_latest(registry)
        return text


class LivenessCollector:
    """Per-appliance series for /metrics, from a `fleet.Liveness` list read at scrape time: when each appliance
    last reported (no sample before its first report) and whether steering may use it now. Lets an
    alert name the appliance that went quiet instead of counting reports fleet-wide."""

    def __init__(self, rows: Iterable[fleet.Liveness], now: float, stale_after: float) -> None:
        self.rows, self.now, self.stale_after = list(rows), now, stale_after

    def collect(self) -> Iterator[GaugeMetricFamily]:
        last = GaugeMetricFamily("oca_control_appliance_last_report_timestamp_seconds",
                                 "Unix time of the appliance's last accepted report", labels=["appliance", "kind"])
        rotation = GaugeMetricFamily("oca_control_appliance_in_rotation",
                                     "1 when the appliance is fresh and healthy (steering may name it), else 0",
                                     labels=["appliance", "kind"])
        for row in self.rows:
            if row.last_report_at is not None:
                last.add_metric([row.appliance_id, row.kind], row.last_report_at)
            rotation.add_metric([row.appliance_id, row.kind], float(fleet.is_healthy(row, self.now, self.stale_after)))
        yield last
        yield rotation
