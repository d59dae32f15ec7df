"""SSE stream delivers alert events; roll call and maintenance commands round-trip to an edge over MQTT."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from .conftest import Central, alert_body


def _read_events(lines: Any, want: int = 50) -> Any:
    event: str | None = None
    for line in lines:
        if line.startswith("event:"):
            event = line.split(":", 1)[1].strip()
        elif line.startswith("data:") and event is not None:
            yield event, json.loads(line.split(":", 1)[1])
            event = None


@pytest.mark.integration
def test_stream_sends_an_alert_event_when_an_edge_publishes(central: Central) -> None:
    alert_id = f"a-{uuid.uuid4().hex[:12]}"
    params = {"access_token": central.tokens["officer"]}
    with (
        httpx.Client(base_url=central.url, timeout=10) as http,
        http.stream("GET", "/api/v1/stream", params=params) as stream,
    ):
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        lines = stream.iter_lines()
        assert next(lines).startswith(": subscribed")
        central.publish("edge-a", "alerts", alert_body(alert_id, level="high"))
        for event, data in _read_events(lines):
            if event == "alert" and data["id"] == alert_id:
                assert data["level"] == "high"
                assert data["workflow"] == "new"
                break
    with central.client(None) as anonymous:
        assert anonymous.get("/api/v1/stream").status_code == 401


@pytest.mark.integration
def test_rollcall_round_trip_through_the_edge(central: Central, fake_edge: list[dict[str, Any]]) -> None:
    with central.client("officer") as http:
        r = http.post("/api/v1/grids/g1/rollcall")
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["edge"] == "edge-a"
        assert body["ok"] is True
        assert body["result"]["missing"] == ["P-2"]
        assert fake_edge[-1]["name"] == "rollcall"
        assert fake_edge[-1]["request_id"] == body["request_id"]
        assert fake_edge[-1]["grid"] == "g1"
        count = http.get("/api/v1/grids/g1/headcount").json()
        assert count["source"] == "rollcall"
        assert count["missing"] == ["P-2"]


@pytest.mark.integration
def test_rollcall_without_an_answer_is_504_json(central: Central) -> None:
    with central.client("operator") as http:
        r = http.post("/api/v1/grids/g2/rollcall")  # edge-b serves g2 and nobody plays edge-b
    assert r.status_code == 504
    assert "edge-b" in r.json()["detail"]


@pytest.mark.integration
def test_out_of_service_is_recorded_and_sent_to_the_edge(central: Central, fake_edge: list[dict[str, Any]]) -> None:
    until = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    with central.client("engineer") as http:
        r = http.post("/api/v1/devices/ir-n-1/out_of_service", json={"until": until, "reason": "fence repair"})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["command"]["answered"] is True
        assert body["command"]["edge"] == "edge-a"
        assert fake_edge[-1]["name"] == "maintenance"
        assert fake_edge[-1]["device"] == "ir-n-1"
        device = next(d for d in http.get("/api/v1/devices").json()["items"] if d["id"] == "ir-n-1")
        assert device["out_of_service_reason"] == "fence repair"
        r = http.post("/api/v1/devices/ir-n-1/in_service")
        assert r.status_code == 200
        assert fake_edge[-1]["until"] is None
        r = http.post("/api/v1/zones/perim-n/walk_test", json={"minutes": 15})
        assert r.status_code == 200, r.text
        assert fake_edge[-1]["name"] == "walk_test"
        assert r.json()["zone"] == "perim-n"
