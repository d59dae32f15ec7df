"""Central's time-series store: `open_store(url)` → InfluxDB v2 write API (VictoriaMetrics) or embedded SQLite."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

from .points import (
    SUBJECT_TAGS,
    TelemetryPoints,
    TsPoint,
    point_from_alert,
    points_from_devices,
    points_from_telemetry,
    to_line,
)

__all__ = [
    "SUBJECT_TAGS",
    "TelemetryPoints",
    "TimeSeriesStore",
    "TsPoint",
    "open_store",
    "point_from_alert",
    "points_from_devices",
    "points_from_telemetry",
    "to_line",
]


class TimeSeriesStore(Protocol):
    async def start(self) -> None:
        """Start the background writer."""
        ...

    async def write(self, points: Sequence[TsPoint]) -> None:
        """Enqueue points (never blocks on the server; overflow beyond 100k queued points is dropped and counted)."""
        ...

    async def query(
        self, measurement: str, subject: str | None, start: datetime, end: datetime, limit: int = 1000
    ) -> list[dict[str, Any]]:
        """The newest `limit` points, oldest first, each {"ts", "tags", "fields"}."""
        ...

    async def ping(self) -> bool: ...

    async def close(self) -> None:
        """Flush (up to 10 s) and release the connection."""
        ...

    @property
    def stats(self) -> dict[str, int]:
        """{"written", "dropped", "errors", "queued"}."""
        ...


def open_store(
    url: str, *, token: str | None = None, org: str = "gridwatch", bucket: str = "gridwatch"
) -> TimeSeriesStore:
    """`http(s)://host:port` → influxdb-client; `sqlite:///relative.db`, `sqlite:////abs.db` (`?retention_days=N`)."""
    if url.startswith(("http://", "https://")):
        from .influx import InfluxStore

        return InfluxStore(url, token=token, org=org, bucket=bucket)
    if url.startswith("sqlite:///"):
        from .sqlite import SqliteStore

        parts = urlsplit(url)
        path = url[len("sqlite:///") :].split("?", 1)[0]
        if not path:
            raise ValueError("sqlite time-series URL has no path: use sqlite:///file.db or sqlite:////abs/file.db")
        days = parse_qs(parts.query).get("retention_days", ["30"])[0]
        return SqliteStore(Path(path), retention_s=float(days) * 86400)
    raise ValueError(f"unsupported time-series store URL {url.split('://')[0]}://…: use http(s):// or sqlite:///")
