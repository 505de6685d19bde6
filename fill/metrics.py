"""Prometheus metrics of the fill agent, in a registry the caller passes in.

Served on the admin port (`metrics.listen`, default 127.0.0.1:9101 in docs/contracts.md) when the
agent runs as a service, and/or written to a node-exporter textfile (`metrics.textfile`) at the end of
each run, which suits `--once` runs from a timer or by hand.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest, write_to_textfile
from prometheus_client.exposition import CONTENT_TYPE_LATEST


class FillMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        r = registry
        self.bytes = Counter("oca_fill_bytes_fetched", "Bytes downloaded, by source kind (peer, origin)",
                             ["source_kind"], registry=r)
        self.items = Counter("oca_fill_items", "Manifest items finished, by outcome (done, failed)",
                             ["outcome"], registry=r)
        self.source_failures = Counter("oca_fill_source_failures", "Failed download attempts, by source kind "
                                       "and reason (status_404, timeout, short_body, corrupt, ...)",
                                       ["source_kind", "reason"], registry=r)
        self.evictions = Counter("oca_fill_evictions", "Files evicted, by reason (not_listed, changed, "
                                 "quarantined)", ["reason"], registry=r)
        self.evicted_bytes = Counter("oca_fill_evicted_bytes", "Bytes evicted", registry=r)
        self.moves = Counter("oca_fill_moves", "Tier moves, by outcome (done, failed)", ["outcome"], registry=r)
        self.skipped = Counter("oca_fill_items_skipped", "Items left out of a run, by reason (no_room, "
                               "no_room_to_move, stopped)", ["reason"], registry=r)
        self.manifest_fetches = Counter("oca_fill_manifest_fetches", "Manifest requests, by outcome (fresh, "
                                        "not_modified, unreachable, rejected)", ["outcome"], registry=r)
        self.manifest_generation = Gauge("oca_fill_manifest_generation", "Generation of the manifest in use",
                                         registry=r)
        self.in_flight = Gauge("oca_fill_downloads_in_flight", "Downloads in progress", registry=r)
        self.rate_limit = Gauge("oca_fill_rate_limit_bytes_per_second", "Current rate cap (0: unlimited)",
                                registry=r)
        self.window_open = Gauge("oca_fill_window_open", "1 while the fill window is open", registry=r)
        self.last_run_end = Gauge("oca_fill_last_run_end_timestamp_seconds", "When the last run ended",
                                  registry=r)
        self.last_run_success = Gauge("oca_fill_last_run_success", "1 if the last run fetched everything it "
                                      "planned, else 0", registry=r)
        for kind in ("peer", "origin"):
            self.bytes.labels(kind)
        for outcome in ("done", "failed"):
            self.items.labels(outcome)

    def write_textfile(self, path: Path) -> None:
        """Atomically (temp file + rename, by prometheus_client) write the metrics for node-exporter."""
        write_to_textfile(str(path), self.registry)

    def admin_app(self) -> web.Application:
        async def metrics(_: web.Request) -> web.Response:
            return web.Response(body=generate_latest(self.registry),
                                headers={"Content-Type": CONTENT_TYPE_LATEST})

        async def healthz(_: web.Request) -> web.Response:
            return web.json_response({"status": "ok"})

        app = web.Application()
        app.router.add_get("/metrics", metrics)
        app.router.add_get("/healthz", healthz)
        return app
