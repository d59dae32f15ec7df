"""Telemetry from an edge reaches positions, people location and the time-series history; slow SSE clients drop."""

from __future__ import annotations

import asyncio

import pytest

from central.metrics import Metrics
from central.stream import Broadcaster
from gridwatch.contract.base import new_event_id

from .conftest import Central, iso


@pytest.mark.integration
def test_telemetry_feeds_positions_location_and_history(central: Central) -> None:
    body = {
        "event_id": new_event_id(),
        "batch": [
            {
                "m": "position",
                "tags": {"tag": "T-1", "person": "P-1"},
                "fields": {"x": 5.0, "y": 5.0, "q": 0.9},
                "ts": iso(),
            },
        ],
    }
    central.publish("edge-a", "telemetry", body)
    with central.client("officer") as http:
        location = central.wait_for(
            lambda: (r := http.get("/api/v1/people/P-1/location")).status_code == 200 and r.json(),
            what="P-1's location",
        )
        assert (location["x"], location["y"], location["grid"]) == (5.0, 5.0, "g1")
        assert any(p.get("tag") == "T-1" for p in http.get("/api/v1/positions").json()["items"])
        history = central.wait_for(
            lambda: http.get("/api/v1/telemetry", params={"measurement": "position", "subject": "T-1"}).json()["items"],
            what="the position in the time-series store",
        )
        assert history[-1]["fields"]["x"] == 5.0
        assert http.get("/api/v1/people/P-2/location").status_code == 404


def test_a_slow_sse_client_is_dropped_without_blocking_others() -> None:
    async def scenario() -> None:
        metrics = Metrics()
        hub = Broadcaster(metrics, queue_size=3)
        hub.bind(asyncio.get_running_loop())
        slow, fast = hub.open(), hub.open()
        received: list[str] = []

        async def read_fast() -> None:
            async for _event, text in hub.listen(fast):
                received.append(text)
                if len(received) == 10:
                    return

        reader = asyncio.create_task(read_fast())
        for i in range(10):
            hub.publish("alert", {"n": i})  # as a service worker thread would (call_soon_threadsafe)
            await asyncio.sleep(0)
        await asyncio.wait_for(reader, 2)
        assert received == [f'{{"n":{i}}}' for i in range(10)]
        assert slow.dropped and not fast.dropped
        assert [item async for item in hub.listen(slow)] == []  # its stream ends
        assert metrics.sse_dropped._value.get() == 1

    asyncio.run(scenario())
