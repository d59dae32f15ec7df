"""Prometheus metrics of one central app (own registry, so several apps can live in one process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class Metrics:
    """Counters and gauges that ingest, the SSE broadcaster and the HTTP middleware update."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.ingested = Counter(
            "gridwatch_central_ingest_messages", "Uplink messages processed, by topic kind", ["kind"], registry=r
        )
        self.duplicates = Counter(
            "gridwatch_central_ingest_duplicates",
            "Uplink messages whose event_id (or snapshot hash) was already stored",
            ["kind"],
            registry=r,
        )
        self.malformed = Counter(
            "gridwatch_central_ingest_malformed", "Uplink messages rejected, by reason", ["reason"], registry=r
        )
        self.ingest_errors = Counter(
            "gridwatch_central_ingest_errors",
            "Uplink messages whose processing failed unexpectedly",
            ["kind"],
            registry=r,
        )
        self.confirmed = Counter(
            "gridwatch_central_ingest_confirmed",
            "Uplink messages confirmed to their edge after commit (cmd/confirm)",
            registry=r,
        )
        self.alerts = Counter(
            "gridwatch_central_alert_transitions", "New alert transitions stored, by level", ["level"], registry=r
        )
        self.broker_connected = Gauge(
            "gridwatch_central_broker_connected", "1 while the uplink broker connection is up", registry=r
        )
        self.sse_clients = Gauge("gridwatch_central_sse_clients", "Connected SSE clients", registry=r)
        self.sse_dropped = Counter(
            "gridwatch_central_sse_dropped_clients", "SSE clients dropped because they read too slowly", registry=r
        )
        self.relayed = Counter(
            "gridwatch_central_stream_relayed",
            "Stream events relayed between central processes through the broker, by direction",
            ["direction"],
            registry=r,
        )
        self.relay_dropped = Counter(
            "gridwatch_central_stream_relay_dropped",
            "Stream events not relayed because the broker was away longer than the relay queue lasts",
            registry=r,
        )
        self.commands = Counter(
            "gridwatch_central_commands",
            "Commands sent to edges, by name and outcome",
            ["name", "outcome"],
            registry=r,
        )
        self.request_latency = Histogram(
            "gridwatch_central_http_request_seconds",
            "HTTP request latency by method, route template and status",
            ["method", "route", "status"],
            registry=r,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
