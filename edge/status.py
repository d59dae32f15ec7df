"""The edge's local status endpoint: `/status` (JSON), `/metrics` (Prometheus) and `/healthz`.

A tiny asyncio HTTP/1.1 server (one request per connection) so that the edge needs no web
framework; it binds the edge's `status_bind` (or `--status-bind`). Metrics are computed at
scrape time from the same status snapshot `/status` shows, in a registry of the agent's own.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

StatusFn = Callable[[], dict[str, Any]]
MAX_REQUEST_BYTES = 8192


def parse_bind(bind: str) -> tuple[str, int]:
    """`HOST:PORT` or `[v6]:PORT` → (host, port); raises ValueError with what is wrong."""
    host, sep, port = bind.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"status bind {bind!r} is not HOST:PORT (e.g. 127.0.0.1:9180)")
    return host.strip("[]"), int(port)


class EdgeCollector(Collector):
    """Prometheus metrics from the agent's status snapshot (see EdgeAgent.status for the keys)."""

    def __init__(self, status: StatusFn) -> None:
        self._status = status

    def collect(self) -> Iterator[Metric]:
        s = self._status()
        labels = {"site": str(s["site"]), "edge": str(s["edge"])}
        names, values = list(labels), list(labels.values())

        def gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
            g = GaugeMetricFamily(name, doc, labels=names)
            g.add_metric(values, value)
            return g

        def counter(name: str, doc: str, value: float) -> CounterMetricFamily:
            c = CounterMetricFamily(name, doc, labels=names)
            c.add_metric(values, value)
            return c

        yield gauge("gridwatch_edge_uptime_seconds", "Seconds since the edge agent started", s["uptime_s"])
        yield gauge(
            "gridwatch_edge_uplink_connected", "1 when the uplink broker is connected", s["uplink"]["connected"]
        )
        yield counter("gridwatch_edge_uplink_reconnects", "Uplink reconnects", s["uplink"]["reconnects"])
        yield gauge(
            "gridwatch_edge_device_broker_connected", "1 when the device broker is connected", s["ingest"]["connected"]
        )
        yield counter("gridwatch_edge_messages", "Device messages received", s["ingest"]["messages"])
        yield counter("gridwatch_edge_readings", "Readings parsed from device messages", s["ingest"]["readings"])
        yield counter(
            "gridwatch_edge_alert_transitions", "Alert transitions written to the outbox", s["alerts"]["sent"]
        )
        yield gauge("gridwatch_edge_active_alerts", "Alerts currently active on this edge", s["alerts"]["active"])
        depth = GaugeMetricFamily(
            "gridwatch_edge_outbox_depth", "Items waiting in the outbox per lane", labels=[*names, "lane"]
        )
        for lane, n in sorted(s["outbox"]["depth"].items()):
            depth.add_metric([*values, lane], n)
        yield depth
        awaiting = GaugeMetricFamily(
            "gridwatch_edge_outbox_awaiting_confirmation",
            "Items sent and kept until central confirms it committed them, per lane",
            labels=[*names, "lane"],
        )
        for lane, n in sorted(s["outbox"]["awaiting_confirmation"].items()):
            awaiting.add_metric([*values, lane], n)
        yield awaiting
        yield counter(
            "gridwatch_edge_outbox_resent_lost",
            "Items the broker acknowledged that never reached central, sent again",
            s["outbox"]["resent_lost"],
        )
        yield counter(
            "gridwatch_edge_telemetry_dropped",
            "Telemetry items shed by the outbox bound",
            s["outbox"]["telemetry_dropped"],
        )
        yield counter(
            "gridwatch_edge_telemetry_spilled",
            "Telemetry bodies kept in memory that the uplink did not take soon enough, written to disk",
            s["outbox"]["telemetry_spilled"],
        )
        yield counter(
            "gridwatch_edge_telemetry_downsampled",
            "Telemetry points thinned by downsampling",
            s["batching"]["downsampled"],
        )
        dead = CounterMetricFamily(
            "gridwatch_edge_dead_letters", "Rejected device messages", labels=[*names, "device", "reason"]
        )
        for row in s["dead_letters"]["by_device"]:
            dead.add_metric([*values, row["device"], row["reason"]], row["count"])
        yield dead
        yield gauge("gridwatch_edge_devices", "Devices this edge serves", s["devices"]["count"])
        yield gauge("gridwatch_edge_devices_online", "Devices seen online", s["devices"]["online"])


class StatusServer:
    """Serves `/status`, `/metrics` and `/healthz` on `bind`; port 0 picks a free port (see `.port`)."""

    def __init__(self, bind: str, status: StatusFn, registry: CollectorRegistry | None = None) -> None:
        self.host, self._port = parse_bind(bind)
        self._status = status
        self.registry = registry or CollectorRegistry(auto_describe=False)
        if registry is None:
            self.registry.register(EdgeCollector(status))
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        if self._server is not None and self._server.sockets:
            port: int = self._server.sockets[0].getsockname()[1]
            return port
        return self._port

    async def start(self) -> None:
        try:
            self._server = await asyncio.start_server(self._handle, self.host, self._port)
        except OSError as exc:
            raise OSError(
                exc.errno, f"cannot bind the status endpoint {self.host}:{self._port}: {exc.strerror or exc}"
            ) from exc
        log.info("status endpoint on http://%s:%d/status (metrics at /metrics)", self.host, self.port)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None

    async def serve(self) -> None:
        """Start and serve until cancelled."""
        await self.start()
        try:
            await asyncio.Event().wait()
        finally:
            await self.close()

    def respond(self, method: str, path: str) -> tuple[int, str, bytes]:
        """(status code, content type, body) for one request; used by the socket handler and tests."""
        if method not in ("GET", "HEAD"):
            return 405, "text/plain; charset=utf-8", b"method not allowed\n"
        route = path.split("?", 1)[0]
        if route == "/status":
            body = json.dumps(self._status(), default=str).encode()
            return 200, "application/json", body
        if route == "/metrics":
            return 200, "text/plain; version=0.0.4; charset=utf-8", generate_latest(self.registry)
        if route == "/healthz":
            return 200, "text/plain; charset=utf-8", b"ok\n"
        return 404, "text/plain; charset=utf-8", b"not found: try /status or /metrics\n"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=5)
            if len(head) > MAX_REQUEST_BYTES:
                raise ValueError("request too large")
            method, path, _version = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ", 2)
            try:
                code, ctype, body = self.respond(method, path)
            except Exception:
                log.exception("status request %s %s failed", method, path)
                code, ctype, body = 500, "text/plain; charset=utf-8", b"internal error\n"
            reason = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 500: "Internal Server Error"}[code]
            header = (
                f"HTTP/1.1 {code} {reason}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
                "Connection: close\r\n\r\n"
            ).encode()
            writer.write(header if method == "HEAD" else header + body)
            await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ValueError, ConnectionError):
            pass  # a broken or slow client; nothing to answer
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
