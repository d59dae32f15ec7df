"""The status endpoint answers /status JSON, Prometheus /metrics and 404s over real HTTP."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

from edge.deadletter import DeadLetterStore
from edge.status import StatusServer, parse_bind
from gridwatch.contract import utcnow


def _status() -> dict[str, Any]:
    letters = DeadLetterStore()
    letters.add(
        device="ir-n-01",
        topic="site/s/perimeter/ir-n-01/event",
        payload=b"\xff",
        reason="not_utf8",
        message="bad bytes",
        ts=utcnow(),
    )
    return {
        "site": "demo-prison",
        "edge": "edge-w1",
        "uptime_s": 12.5,
        "ingest": {"connected": True, "messages": 7, "readings": 6},
        "uplink": {"connected": False, "reconnects": 2},
        "alerts": {"active": 1, "sent": 3},
        "outbox": {
            "depth": {"alerts": 2, "telemetry": 5},
            "awaiting_confirmation": {"alerts": 4, "events": 1},
            "resent_lost": 3,
            "telemetry_dropped": 0,
            "telemetry_spilled": 0,
        },
        "batching": {"downsampled": 9},
        "dead_letters": letters.summary(),
        "devices": {"count": 4, "online": 3, "devices": []},
    }


async def _get(paths: list[str]) -> list[httpx.Response]:
    server = StatusServer("127.0.0.1:0", _status)
    await server.start()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client:
            return [await client.get(p) for p in paths]
    finally:
        await server.close()


def test_status_metrics_and_not_found() -> None:
    status, metrics, missing, health = asyncio.run(_get(["/status", "/metrics", "/nope", "/healthz"]))
    assert status.status_code == 200 and status.headers["content-type"] == "application/json"
    body = json.loads(status.content)
    assert body["dead_letters"]["total"] == 1 and body["dead_letters"]["last"][0]["reason"] == "not_utf8"
    assert metrics.status_code == 200
    text = metrics.text
    assert 'gridwatch_edge_outbox_depth{edge="edge-w1",lane="alerts",site="demo-prison"} 2.0' in text
    assert 'gridwatch_edge_outbox_awaiting_confirmation{edge="edge-w1",lane="alerts",site="demo-prison"} 4.0' in text
    assert 'gridwatch_edge_outbox_resent_lost_total{edge="edge-w1",site="demo-prison"} 3.0' in text
    assert 'gridwatch_edge_uplink_connected{edge="edge-w1",site="demo-prison"} 0.0' in text
    assert 'device="ir-n-01"' in text and 'reason="not_utf8"' in text
    assert "gridwatch_edge_dead_letters_total" in text
    assert missing.status_code == 404
    assert health.status_code == 200


def test_bind_in_use_is_a_clear_error() -> None:
    async def scenario() -> None:
        first = StatusServer("127.0.0.1:0", _status)
        await first.start()
        try:
            second = StatusServer(f"127.0.0.1:{first.port}", _status)
            with pytest.raises(OSError, match="cannot bind the status endpoint"):
                await second.start()
        finally:
            await first.close()

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("bind", "expected"),
    [("127.0.0.1:9180", ("127.0.0.1", 9180)), ("[::1]:80", ("::1", 80)), ("0.0.0.0:0", ("0.0.0.0", 0))],
)
def test_parse_bind(bind: str, expected: tuple[str, int]) -> None:
    assert parse_bind(bind) == expected


@pytest.mark.parametrize("bind", ["9180", "host:", ":9180", "h:99999", "h:x"])
def test_parse_bind_refuses(bind: str) -> None:
    with pytest.raises(ValueError, match="HOST:PORT"):
        parse_bind(bind)
