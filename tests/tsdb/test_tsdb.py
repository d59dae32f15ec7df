"""Time-series store: points from uplink bodies, line protocol, VictoriaMetrics and SQLite round trips, outages."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from central.tsdb import (
    TimeSeriesStore,
    TsPoint,
    open_store,
    point_from_alert,
    points_from_devices,
    points_from_telemetry,
    to_line,
)
from central.tsdb.influx import InfluxStore
from central.tsdb.sqlite import SqliteStore
from gridwatch.broker import free_port
from gridwatch.contract import AlertTransition, DevicesBody, TelemetryBody, new_event_id

from .conftest import force_flush, start_victoria_metrics, stop_victoria_metrics

T0 = datetime(2026, 11, 23, 6, 0, tzinfo=UTC)
WEIRD_GRID = "g 1,a=b"  # a space, a comma and an equals sign: all need escaping in line protocol


def position_points(n_tags: int, per_tag: int, t0: datetime = T0) -> list[TsPoint]:
    out = []
    for i in range(per_tag):
        for t in range(n_tags):
            out.append(
                TsPoint(
                    "position",
                    {"site": "s1", "tag": f"T-{t:04d}", "person": f"P-{t:04d}", "grid": WEIRD_GRID},
                    {"x": float(t) + i / 100, "y": float(i), "z": 0.0, "q": 0.9},
                    t0 + timedelta(milliseconds=10 * i),
                )
            )
    return out


async def wait_until(check: Callable[[], bool], timeout: float = 15.0) -> None:
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.05)


def test_line_protocol_escapes_tags_and_strings() -> None:
    point = TsPoint(
        "alert",
        {"site": "s 1", "zone": "a,b=c", "empty": ""},
        {"state": 'say "hi"', "active": 1, "ok": True, "x": 1.5, "bad": float("nan")},
        datetime(2026, 1, 1, tzinfo=UTC) + timedelta(microseconds=1),
    )
    # fields sorted by key, as influxdb-client's `Point` writes them (tests/tsdb/test_lineproto.py)
    assert to_line(point) == (
        'alert,site=s\\ 1,zone=a\\,b\\=c active=1i,ok=true,state="say \\"hi\\"",x=1.5 1767225600000001000'
    )
    assert to_line(TsPoint("m", {}, {"bad": float("inf")}, T0)) is None


def test_points_from_uplink_bodies_follow_the_contract() -> None:
    telemetry = TelemetryBody.model_validate(
        {
            "event_id": new_event_id(),
            "batch": [
                {
                    "m": "position",
                    "tags": {"tag": "T-1", "person": "P-1", "grid": "g1"},
                    "fields": {"x": 1.0, "y": 2.0},
                    "ts": T0,
                },
                {"m": "vitals", "tags": {"band": "W-1", "person": "P-1"}, "fields": {"hr": 72, "temp": 36.4}, "ts": T0},
            ],
        }
    )
    pts = points_from_telemetry("s1", telemetry)
    assert [(p.measurement, p.tags["site"], p.ts) for p in pts] == [("position", "s1", T0), ("vitals", "s1", T0)]
    assert pts[1].fields == {"hr": 72, "temp": 36.4}
    alert = AlertTransition.model_validate(
        {
            "event_id": new_event_id(),
            "alert_id": "al-1",
            "rule": "perimeter.intrusion",
            "level": "high",
            "state": "cleared",
            "ts": T0,
            "first_seen": T0,
            "site": "s1",
            "edge": "e1",
            "zone": "perim-n",
            "subject": {"kind": "zone", "id": "perim-n"},
            "title": "t",
        }
    )
    ap = point_from_alert(alert)
    assert ap.measurement == "alert"
    assert {k: ap.tags[k] for k in ("site", "rule", "level", "zone")} == {
        "site": "s1",
        "rule": "perimeter.intrusion",
        "level": "high",
        "zone": "perim-n",
    }
    assert ap.fields["state"] == "cleared" and ap.fields["alert_id"] == "al-1" and ap.fields["active"] == 0
    devices = DevicesBody.model_validate(
        {
            "event_id": new_event_id(),
            "ts": T0,
            "devices": [{"id": "ir-1", "family": "perimeter_ir", "online": False, "battery": 12, "dead_letters": 3}],
        }
    )
    (dp,) = points_from_devices("s1", devices)
    assert dp.tags == {"site": "s1", "device": "ir-1", "family": "perimeter_ir"}
    assert dp.fields == {"online": False, "dead_letters": 3, "battery": 12.0}


async def roundtrip_10k(store: TimeSeriesStore, flush: Callable[[], Awaitable[None]]) -> None:
    await store.start()
    points = position_points(100, 100)
    for start in range(0, len(points), 1000):
        await store.write(points[start : start + 1000])
    await wait_until(lambda: store.stats["written"] == 10_000)
    await flush()
    end = T0 + timedelta(hours=1)
    rows = await store.query("position", None, T0 - timedelta(seconds=1), end, limit=20_000)
    assert len(rows) == 10_000
    assert all(r["tags"]["grid"] == WEIRD_GRID and r["tags"]["site"] == "s1" for r in rows)
    one = await store.query("position", "P-0042", T0, end, limit=1000)  # matched by the person tag
    assert len(one) == 100
    assert [r["fields"]["y"] for r in one] == [float(i) for i in range(100)]
    assert one[5]["ts"] == T0 + timedelta(milliseconds=50)
    assert one[5]["fields"]["x"] == pytest.approx(42.05)
    by_tag = await store.query("position", "T-0042", T0, end, limit=10)  # the newest 10, oldest first
    assert [r["fields"]["y"] for r in by_tag] == [float(i) for i in range(90, 100)]
    assert await store.query("position", "nobody", T0, end) == []
    assert store.stats == {"written": 10_000, "dropped": 0, "errors": 0, "queued": 0}
    assert await store.ping()


def test_victoria_metrics_stores_10k_points_and_reads_them_back(victoria_metrics: str) -> None:
    async def main() -> None:
        store = open_store(victoria_metrics, bucket="gridwatch")

        async def flush() -> None:
            await asyncio.to_thread(force_flush, victoria_metrics)

        try:
            await roundtrip_10k(store, flush)
        finally:
            await store.close()

    asyncio.run(main())


def test_sqlite_stores_10k_points_and_reads_them_back(tmp_path: Path) -> None:
    async def main() -> None:
        store = open_store(f"sqlite:///{tmp_path}/ts.db?retention_days=36500")

        async def flush() -> None:
            return None

        try:
            await roundtrip_10k(store, flush)
        finally:
            await store.close()
        reopened = open_store(f"sqlite:///{tmp_path}/ts.db")
        assert len(await reopened.query("position", "T-0001", T0, T0 + timedelta(hours=1))) == 100
        await reopened.close()

    asyncio.run(main())


def telemetry_bodies(t0: datetime) -> list[TelemetryBody]:
    """Three bodies of 70 positions each; tag `T-{body}-{i}`, x = i + 0.5, y = 2.0 (written as `2`)."""
    return [
        TelemetryBody.model_validate(
            {
                "event_id": new_event_id(),
                "batch": [
                    {
                        "m": "position",
                        "tags": {"tag": f"T-{b}-{i}", "grid": WEIRD_GRID},
                        "fields": {"x": i + 0.5, "y": 2.0},
                        "ts": t0 + timedelta(milliseconds=100 * b + i),
                    }
                    for i in range(70)
                ],
            }
        )
        for b in range(3)
    ]


async def roundtrip_telemetry(
    store: InfluxStore | SqliteStore, t0: datetime, flush: Callable[[], Awaitable[None]]
) -> None:
    """Bodies through `points_from_telemetry`, split across batches of 100, read back as sent."""
    store.batch_max = 100
    await store.start()
    for body in telemetry_bodies(t0):
        await store.write(points_from_telemetry("s9", body))
    assert await store.flush(15)
    await flush()
    assert store.stats == {"written": 210, "dropped": 0, "errors": 0, "queued": 0}
    rows = await store.query("position", None, t0, t0 + timedelta(minutes=1), limit=1000)
    assert len(rows) == 210
    (one,) = await store.query("position", "T-1-5", t0, t0 + timedelta(minutes=1))
    assert one["tags"] == {"site": "s9", "tag": "T-1-5", "grid": WEIRD_GRID}
    assert one["fields"] == {"x": 5.5, "y": 2.0} and one["ts"] == t0 + timedelta(milliseconds=105)


def test_telemetry_bodies_reach_victoria_metrics_as_sent(victoria_metrics: str) -> None:
    async def main() -> None:
        store = InfluxStore(victoria_metrics)
        try:
            await roundtrip_telemetry(
                store, T0 + timedelta(days=3), lambda: asyncio.to_thread(force_flush, victoria_metrics)
            )
        finally:
            await store.close()

    asyncio.run(main())


def test_telemetry_bodies_reach_sqlite_as_sent(tmp_path: Path) -> None:
    async def main() -> None:
        store = SqliteStore(tmp_path / "ts.db", retention_s=36500 * 86400)

        async def flush() -> None:
            return None

        try:
            await roundtrip_telemetry(store, T0 + timedelta(days=3), flush)
        finally:
            await store.close()

    asyncio.run(main())


def test_alerts_read_back_from_victoria_metrics_with_state_and_id(victoria_metrics: str) -> None:
    async def main() -> None:
        store = open_store(victoria_metrics)
        await store.start()
        t = T0 + timedelta(days=1)
        await store.write(
            [
                TsPoint(
                    "alert",
                    {"site": "s1", "rule": "access.door_forced", "level": "high", "zone": "z 9", "alert_id": "al-77"},
                    {"state": "active", "alert_id": "al-77", "active": 1},
                    t,
                ),
                TsPoint(
                    "alert",
                    {"site": "s1", "rule": "access.door_forced", "level": "high", "zone": "z 9", "alert_id": "al-77"},
                    {"state": "cleared", "alert_id": "al-77", "active": 0},
                    t + timedelta(seconds=5),
                ),
            ]
        )
        await store.close()
        await asyncio.to_thread(force_flush, victoria_metrics)
        reader = open_store(victoria_metrics)
        rows = await reader.query("alert", "al-77", t, t + timedelta(minutes=1))
        await reader.close()
        assert [(r["fields"]["state"], r["fields"]["alert_id"], r["tags"]["zone"]) for r in rows] == [
            ("active", "al-77", "z 9"),
            ("cleared", "al-77", "z 9"),
        ]

    asyncio.run(main())


def test_server_down_does_not_block_and_points_arrive_when_it_is_back(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"

    async def main() -> None:
        store = open_store(base)
        await store.start()
        assert not await store.ping()
        points = position_points(10, 50, T0 + timedelta(days=2))
        async with asyncio.timeout(2):  # write never waits for the server
            await store.write(points)
        await wait_until(lambda: store.stats["errors"] >= 2)
        assert store.stats["queued"] == 500 and store.stats["written"] == 0
        proc = await asyncio.to_thread(start_victoria_metrics, port, tmp_path / "vm", tmp_path / "vm.log")
        try:
            await wait_until(lambda: store.stats["written"] == 500, timeout=20)
            assert await store.ping()
            await asyncio.to_thread(force_flush, base)
            rows = await store.query("position", None, T0 + timedelta(days=2), T0 + timedelta(days=3), limit=10_000)
            assert len(rows) == 500
            assert store.stats["dropped"] == 0 and store.stats["queued"] == 0
        finally:
            await store.close()
            await asyncio.to_thread(stop_victoria_metrics, proc)

    asyncio.run(main())


def test_a_full_queue_drops_and_counts_instead_of_blocking(tmp_path: Path) -> None:
    async def main() -> None:
        store = open_store(f"http://127.0.0.1:{free_port()}")  # nothing listens: everything stays queued
        await store.start()
        for _ in range(11):
            await store.write(position_points(100, 100))  # 110k points into a 100k queue
        assert store.stats["queued"] == 100_000
        assert store.stats["dropped"] == 10_000
        # close gives up flushing to a dead server after its deadline and counts what it sheds
        task = asyncio.create_task(store.close())
        await asyncio.wait_for(task, 30)
        assert store.stats["queued"] == 0 and store.stats["dropped"] == 110_000

    asyncio.run(main())


def test_sqlite_query_accepts_any_calendar_range(tmp_path: Path) -> None:
    """Found by schemathesis: a `to` in year 9999 overflowed SQLite's 64-bit integers (a 500)."""
    from datetime import UTC, datetime

    async def run() -> list[dict[str, object]]:
        store = open_store(f"sqlite:///{tmp_path}/ts.db")
        await store.start()
        try:
            return await store.query(
                "position", "T-1", datetime(1, 1, 1, tzinfo=UTC), datetime(9999, 12, 31, tzinfo=UTC)
            )
        finally:
            await store.close()

    assert asyncio.run(run()) == []
