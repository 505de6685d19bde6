"""Prometheus metrics of the steering service, on an injected registry (values read at scrape time)."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from steering.ranking import Tier

TIER_LABELS = tuple(t.label for t in Tier) + ("none",)
FETCH_OUTCOMES = ("updated", "not_modified", "fetch_error", "invalid")
# Decisions take microseconds; the HTTP layer milliseconds.
_LATENCY_BUCKETS = (2e-6, 5e-6, 1e-5, 2e-5, 5e-5, 1e-4, 2e-4, 5e-4, 1e-3, 5e-3, 0.025, 0.1)


class SteeringMetrics:
    def __init__(self, registry: CollectorRegistry, model_age: Callable[[], float | None]) -> None:
        self.registry = registry
        self.decisions = Counter(
            "oca_steering_decisions", "Steering decisions by the first candidate's tier and the API",
            ["api", "tier"], registry=registry)
        self.latency = Histogram(
            "oca_steering_decision_seconds", "Time to locate the client and rank appliances",
            registry=registry, buckets=_LATENCY_BUCKETS)
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
        # Pre-bind the hot children: labels() costs a lock and a dict lookup per call.
        self._decision_children = {(api, t): self.decisions.labels(api, t)
                                   for api in ("steer", "hls", "dash") for t in TIER_LABELS}
        for outcome in FETCH_OUTCOMES:
            self.fetches.labels(outcome)

    def count_compiled_answers(self, read: Callable[[], int]) -> None:
        """Export `read()` as oca_steering_compiled_answers_total: answers the compiled cached path wrote
        (steering/_answer.c). A plain integer the handler bumps, read at scrape time, because a Counter
        costs a lock per answer on the path that exists to be cheap."""
        self.registry.register(_ReadCounter("oca_steering_compiled_answers",
                                            "Steer answers written by the compiled cached path", read))

    def decided(self, api: str, tier: str, seconds: float) -> None:
        self._decision_children[(api, tier)].inc()
        self.latency.observe(seconds)


def _or_minus_one(value: float | None) -> float:
    return -1.0 if value is None else value


class _ReadCounter(Collector):
    def __init__(self, name: str, documentation: str, read: Callable[[], int]) -> None:
        self.name, self.documentation, self.read = name, documentation, read

    def collect(self) -> list[CounterMetricFamily]:
        return [CounterMetricFamily(self.name, self.documentation, value=self.read())]
