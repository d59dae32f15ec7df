"""Helpers for the ingest tests: ingest workers under uvicorn in threads, edge publishers, metric reads."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as paho
import uvicorn
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from central.app import create_app
from central.settings import Settings
from central.tsdb import TsPoint
from gridwatch.broker import Mosquitto, free_port
from gridwatch.config.models import SiteConfig
from gridwatch.mqtt import sync_client

SECRET_KEY = "test-secret-key-" + "x" * 40


class NullStore:
    """A time-series store that keeps nothing: these tests measure the alert store, not the tsdb."""

    def __init__(self) -> None:
        self.written = 0

    async def start(self) -> None:
        return None

    async def write(self, points: Sequence[TsPoint]) -> None:
        self.written += len(points)

    async def query(
        self, measurement: str, subject: str | None, start: datetime, end: datetime, limit: int = 1000
    ) -> list[dict[str, Any]]:
        return []

    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        return None

    @property
    def stats(self) -> dict[str, int]:
        return {"written": self.written, "dropped": 0, "errors": 0, "queued": 0}


def settings_for(site: SiteConfig, broker: Mosquitto, database_url: str, **changes: Any) -> Settings:
    env = {
        "GRIDWATCH_UPLINK_BROKER": broker.url("central"),
        "GRIDWATCH_DATABASE_URL": database_url,
        "GRIDWATCH_TSDB_URL": "sqlite:///unused.db",
        "GRIDWATCH_SECRET_KEY": SECRET_KEY,
    }
    role = changes.pop("role", "ingest")
    worker = changes.pop("worker", None)
    settings = Settings.from_site(site, env, role=role, worker=worker)
    # a broker of the test's own, but client ids unique per test all the same
    defaults: dict[str, Any] = {
        "static_dir": None,
        "tick_s": 3600.0,
        "cmd_timeout_s": 5.0,
        "mqtt_identifier": f"central-ingest-test-{uuid.uuid4().hex[:8]}",
    }
    return settings.with_(**{**defaults, **changes})


class _Server(uvicorn.Server):
    def install_signal_handlers(self) -> None:  # runs in a thread: leave the main thread's signals alone
        return


@dataclass
class Worker:
    """One central process-alike: its app and uvicorn server on a thread."""

    name: str
    app: FastAPI
    url: str
    server: _Server
    thread: threading.Thread

    def metric(self, name: str, **labels: str) -> float:
        text = httpx.get(f"{self.url}/metrics", timeout=10).text
        total = 0.0
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                    total += sample.value
        return total

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(20)


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, period: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(period)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def start_worker(name: str, settings: Settings) -> Worker:
    app = create_app(settings, tsdb=NullStore())
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", timeout_graceful_shutdown=2)
    server = _Server(config)
    thread = threading.Thread(target=server.run, name=f"central-{name}", daemon=True)
    thread.start()
    worker = Worker(name, app, f"http://127.0.0.1:{port}", server, thread)
    try:
        wait_for(lambda: server.started, 30, f"{name} to start")

        def ready() -> bool:
            return httpx.get(f"{worker.url}/readyz", timeout=5).status_code == 200

        wait_for(ready, 30, f"{name} /readyz to answer 200")
    except BaseException:
        worker.stop()
        raise
    return worker


def edge_publisher(broker: Mosquitto, edge: str) -> paho.Client:
    """A connected paho client logged in as the edge's own broker user (edge_acl), loop running."""
    client = sync_client(broker.url(edge), f"{edge}-{uuid.uuid4().hex[:6]}")
    client.max_inflight_messages_set(500)
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    return client


def database_path(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'central.db'}"
