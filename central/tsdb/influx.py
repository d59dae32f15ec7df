"""InfluxDB v2 write API (influxdb-client) store; reads back through VictoriaMetrics' export API."""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime
from typing import Any

import httpx
from influxdb_client.client.influxdb_client import InfluxDBClient
from influxdb_client.client.write_api import SYNCHRONOUS
from influxdb_client.domain.write_precision import WritePrecision

from .lineproto import LineFormatter
from .points import SUBJECT_TAGS, Batch, FieldValue, QueuedWriter, TelemetryPoints, TsPoint, batch_points

__all__ = ["InfluxStore"]

log = logging.getLogger(__name__)

WRITE_TIMEOUT_MS = 5_000


def _selector_value(text: str) -> str:
    """A label value inside a PromQL/MetricsQL series selector: a double-quoted string."""
    return json.dumps(text)


class InfluxStore(QueuedWriter[bytes]):
    """Writes line protocol with influxdb-client's SYNCHRONOUS WriteApi in a worker thread.

    VictoriaMetrics accepts the InfluxDB v2 write API and stores `measurement_field` series with
    the tags as labels; `query` reads them back with `/api/v1/export` and regroups the fields.
    VictoriaMetrics keeps numbers only (string fields read back as 0), so the `alert` measurement's
    string fields are rebuilt from its `active` field and `alert_id` tag.
    """

    def __init__(
        self, url: str, *, token: str | None = None, org: str = "gridwatch", bucket: str = "gridwatch"
    ) -> None:
        super().__init__()
        self.url = url.rstrip("/")
        self.org = org
        self.bucket = bucket
        self._client = InfluxDBClient(url=self.url, token=token or "", org=org, timeout=WRITE_TIMEOUT_MS)
        self._write_api = self._client.write_api(write_options=SYNCHRONOUS)
        self._formatter = LineFormatter()
        self._http = httpx.AsyncClient(base_url=self.url, timeout=10.0)

    def _prepare(self, batch: Batch) -> tuple[bytes, list[TsPoint] | None]:
        """The batch as one line-protocol body (influxdb-client then sends it as is, without a pass per line).

        A telemetry body's points are formatted straight from the body (no `TsPoint` per point).
        """
        lines: list[str] = []
        try:
            for run in batch:
                if type(run) is TelemetryPoints:
                    self._formatter.telemetry_lines(run.site, run.entries, lines)
                else:
                    self._formatter.lines(run, lines)
        except TypeError:  # some point's field is of a type line protocol has no form for: find it, keep the rest
            lines, kept = [], []
            for p in batch_points(batch):
                try:
                    line = self._formatter.line(p)
                except TypeError as exc:
                    log.error("time-series point %r %s dropped: %s", p.measurement, p.tags, exc)
                    continue
                kept.append(p)
                if line is not None:
                    lines.append(line)
            return "\n".join(lines).encode(), kept
        return "\n".join(lines).encode(), None

    def _send(self, payload: bytes) -> None:
        if not payload:
            return
        precision: Any = WritePrecision.NS  # a str constant that the library annotates as the enum
        self._write_api.write(bucket=self.bucket, org=self.org, record=payload, write_precision=precision)

    async def ping(self) -> bool:
        try:
            response = await self._http.get("/health", timeout=3.0)
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    async def query(
        self, measurement: str, subject: str | None, start: datetime, end: datetime, limit: int = 1000
    ) -> list[dict[str, Any]]:
        """The newest `limit` points of `measurement` in [start, end], oldest first."""
        name = f"__name__=~{_selector_value(_regex_escape(measurement) + '_.+')}"
        if subject is None:
            selectors = [f"{{{name}}}"]
        else:
            selectors = [f"{{{name},{tag}={_selector_value(subject)}}}" for tag in SUBJECT_TAGS]
        params: list[tuple[str, str | int | float | bool | None]] = [("match[]", s) for s in selectors]
        params += [("start", f"{start.timestamp():.3f}"), ("end", f"{end.timestamp():.3f}")]
        response = await self._http.get("/api/v1/export", params=params)
        response.raise_for_status()
        rows: dict[tuple[int, tuple[tuple[str, str], ...]], dict[str, FieldValue]] = {}
        prefix = measurement + "_"
        for line in response.text.splitlines():
            if not line.strip():
                continue
            series = json.loads(line)
            labels: dict[str, str] = dict(series["metric"])
            field = labels.pop("__name__")[len(prefix) :]
            key_tags = tuple(sorted(labels.items()))
            for value, ts_ms in zip(series["values"], series["timestamps"], strict=True):
                rows.setdefault((ts_ms, key_tags), {})[field] = value
        ordered = sorted(rows.items(), key=lambda kv: kv[0][0])[-limit:] if limit > 0 else []
        out = []
        for (ts_ms, key_tags), fields in ordered:
            tags = dict(key_tags)
            if measurement == "alert":
                if "active" in fields:
                    fields["state"] = "active" if fields["active"] else "cleared"
                if "alert_id" in tags:
                    fields["alert_id"] = tags["alert_id"]
            out.append({"ts": datetime.fromtimestamp(ts_ms / 1000, tz=UTC), "tags": tags, "fields": fields})
        return out

    async def close(self) -> None:
        try:
            await self._stop_writer(10.0)
        finally:
            await self._http.aclose()
            await asyncio.to_thread(self._client.close)


def _regex_escape(text: str) -> str:
    """Escape RE2 metacharacters (measurement names are plain words, but be safe)."""
    return "".join("\\" + c if c in r"\.+*?()|[]{}^$" else c for c in text)
