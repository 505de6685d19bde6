"""Prometheus metrics of the steering service, on an injected registry (values read at scrape time)."""

from __future__ import annotations

from array import array
from bisect import bisect_left
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from steering.ranking import Tier

TIER_LABELS = tuple(t.label for t in Tier) + ("none",)
APIS = ("steer", "hls", "dash")
FETCH_OUTCOMES = ("updated", "not_modified", "fetch_error", "invalid")
# Decisions take microseconds; the HTTP layer milliseconds.
_LATENCY_BUCKETS = (2e-6, 5e-6, 1e-5, 2e-5, 5e-5, 1e-4, 2e-4, 5e-4, 1e-3, 5e-3, 0.025, 0.1)


class SteeringMetrics:
    def __init__(self, registry: CollectorRegistry, model_age: Callable[[], float | None]) -> None:
        self.registry = registry
        self.decisions = DecisionCounts()
        registry.register(self.decisions)
        self.rejected = Counter(
            "oca_steering_rejected_requests", "Requests answered with an error, by reason",
            ["reason"], registry=registry)
        self.fetches = Counter(
            "oca_steering_snapshot_fetches", "Fleet snapshot fetches by outcome", ["outcome"],
            registry=registry)
        self.build_seconds = Gauge(
            "oca_steering_model_build_seconds", "Time the last model build took", registry=registry)
        self.appliances = Gauge(
            "oca_steering_model_appliances", "Appliances in the current model", registry=registry)
        self.prefixes = Gauge(
            "oca_steering_model_prefixes", "BGP prefixes in the current model", ["family"], registry=registry)
        age = Gauge("oca_steering_model_age_seconds",
                    "Seconds since the model was built or confirmed by the control plane (-1: no model yet)",
                    registry=registry)
        age.set_function(lambda: _or_minus_one(model_age()))
        self.cache_hit_ratio = Gauge(
            "oca_steering_ranking_cache_hit_ratio", "Share of decisions answered from the current model's "
            "ranking cache", registry=registry)
        self.config_reloads = Counter(
            "oca_steering_config_reloads", "SIGHUP configuration reloads by outcome", ["outcome"],
            registry=registry)
        for outcome in ("ok", "error"):
            self.config_reloads.labels(outcome)
        for outcome in FETCH_OUTCOMES:
            self.fetches.labels(outcome)

    def decided(self, api: str, tier: str, seconds: float) -> None:
        self.decisions.add(api, tier, seconds)


def _or_minus_one(value: float | None) -> float:
    return -1.0 if value is None else value


class DecisionCounts(Collector):
    """oca_steering_decisions_total{api,tier}, oca_steering_decision_seconds (histogram) and
    oca_steering_compiled_answers_total, kept as plain numbers in arrays and exported at scrape time.

    Why not prometheus_client's Counter and Histogram: they take a lock per update, ~1.8 µs a decision,
    as much as the compiled cached answer (steering/_answer.c) costs in all. That path updates these
    arrays itself, so both paths count into the same figures. Every update happens on the event loop's
    thread, and so does the scrape.
    """

    def __init__(self) -> None:
        self.index = {(api, tier): n * len(TIER_LABELS) + t
                      for n, api in enumerate(APIS) for t, tier in enumerate(TIER_LABELS)}
        # counts: one per (api, tier), then the answers the compiled path wrote.
        self.counts = array("q", bytes(8 * (len(self.index) + 1)))
        self.bounds = array("d", _LATENCY_BUCKETS)
        self.buckets = array("q", bytes(8 * (len(_LATENCY_BUCKETS) + 1)))   # per bucket (not cumulative), +Inf
        self.seconds = array("d", [0.0])

    def add(self, api: str, tier: str, seconds: float) -> None:
        self.counts[self.index[(api, tier)]] += 1
        self.buckets[bisect_left(self.bounds, seconds)] += 1     # `le`: a bound counts what equals it
        self.seconds[0] += seconds

    def collect(self) -> Iterator[Metric]:
        decisions = CounterMetricFamily("oca_steering_decisions",
                                        "Steering decisions by the first candidate's tier and the API",
                                        labels=["api", "tier"])
        for (api, tier), n in self.index.items():
            decisions.add_metric([api, tier], self.counts[n])
        yield decisions
        cumulative, total = [], 0
        for bound, n in zip((*_LATENCY_BUCKETS, float("inf")), self.buckets, strict=True):
            total += n
            cumulative.append((floatToGoString(bound), total))
        yield HistogramMetricFamily("oca_steering_decision_seconds", "Time to locate the client and rank appliances",
                                    buckets=cumulative, sum_value=self.seconds[0])
        yield CounterMetricFamily("oca_steering_compiled_answers",
                                  "Steer answers written by the compiled cached path (steering/_answer.c)",
                                  value=self.counts[len(self.index)])
