"""Consecutive RTLS batches are joined before the rules and the batcher see them (edge/ingest.py
`_JoinedBatches`): the same transitions of each alert, the same telemetry points and the same
rule state as one by one."""

from __future__ import annotations

import json
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import paho.mqtt.client as paho
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import edge.ingest
from edge.agent import EdgeAgent
from edge.ingest import _JoinedBatches
from edge.outbox import Lane
from gridwatch.clock import FakeClock
from gridwatch.config import load_site
from gridwatch.contract import PositionsReading, Reading, VitalsReading
from gridwatch.contract.readings import PositionColumns, Positions
from tests.conftest import DEMO_SITE

SITE = load_site(DEMO_SITE)
T0 = datetime(2026, 11, 23, 6, 0, tzinfo=UTC)
RTLS_TOPIC = "site/demo-prison/rtls/rtls-w1/positions"
BAND_TOPIC = "site/demo-prison/wristband/wb-w1/telemetry"
# ward 1's inmates and two of its officers: staff may enter the staff-only corridor, inmates may not
TAGS = [f"T-{i:04d}" for i in range(1, 9)] + ["T-S001", "T-S002"]
# ward 1's cells, its officers' corridor (staff only), the north fence, the yard, and nowhere
SPOTS = [(30.0, 80.0), (80.0, 50.0), (50.0, 135.0), (40.0, 110.0), (100.0, 20.0)]


def _ts(second: int) -> str:
    return (T0 + timedelta(seconds=second)).isoformat().replace("+00:00", "Z")


positions = st.lists(
    st.tuples(st.sampled_from(TAGS), st.sampled_from(SPOTS), st.none() | st.integers(0, 100)), min_size=1, max_size=6
)
rtls_message = st.builds(
    lambda second, ps: (
        RTLS_TOPIC,
        {
            "ts": _ts(second),
            "positions": [
                {"tag": tag, "x": x, "y": y} | ({} if bat is None else {"bat": bat}) for tag, (x, y), bat in ps
            ],
        },
    ),
    st.integers(-3, 3),
    positions,
)
band_message = st.builds(
    lambda second, hr: (BAND_TOPIC, {"ts": _ts(second), "band": "W-0001", "hr": hr}),
    st.integers(-3, 3),
    st.integers(40, 190),
)
messages = st.lists(st.one_of(rtls_message, rtls_message, rtls_message, band_message), min_size=1, max_size=25)


def _agent(tmp: Path, name: str) -> EdgeAgent:
    return EdgeAgent(
        SITE,
        "edge-w1",
        device_broker="mqtt://x:y@127.0.0.1:1",
        uplink_broker="mqtt://x:y@127.0.0.1:1",
        outbox_path=tmp / f"{name}.db",
        status_bind=None,
        clock=FakeClock(T0),
        cameras=False,
    )


def _results(agent: EdgeAgent) -> tuple[dict[tuple[str, str, str], list[dict[str, Any]]], list[Any], Any]:
    """What the agent stored: each alert's transitions in order (by rule and subject), the
    telemetry points in order, and the rule state; event ids left out, and the alert ids (random)
    named by rule, subject and how many alerts that subject had before under that rule.

    Alerts of different rules or subjects may interleave differently: joined, the location rule
    sees every position of the run before the battery check does, one by one it alternates. (Flood
    grouping counts per rule and zone, so it is not affected.)
    """
    agent._flush_batches()
    items = agent.outbox.peek(100_000)
    state = agent.rules.state_bytes().decode()
    names: dict[str, str] = {}
    opened: dict[tuple[str, str, str], int] = {}
    alerts: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for item in items:
        if item.lane != Lane.ALERTS:
            continue
        alert = json.loads(item.payload)
        alert.pop("event_id")
        key = (alert["rule"], alert["subject"]["kind"], alert["subject"]["id"])
        if alert["alert_id"] not in names:
            names[alert["alert_id"]] = f"{'/'.join(key)}#{opened.get(key, 0)}"
            opened[key] = opened.get(key, 0) + 1
        alert["alert_id"] = names[alert["alert_id"]]
        alerts.setdefault(key, []).append(alert)
    for alert_id, name in names.items():
        state = state.replace(alert_id, name)
    points = [p for i in items if i.lane == Lane.TELEMETRY for p in json.loads(i.payload)["batch"]]
    rules = json.loads(state)
    rules["book"]["active"].sort(key=lambda a: a["alert_id"])  # kept in the order they were raised
    return alerts, points, rules


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messages, st.sampled_from([3, 8, edge.ingest.RUN_POSITIONS]))
def test_joined_batches_give_what_the_batches_give_one_by_one(
    sequence: list[tuple[str, dict[str, Any]]], cap: int
) -> None:
    wire = [(topic, json.dumps(body).encode()) for topic, body in sequence]
    with tempfile.TemporaryDirectory() as tmp:
        one_by_one, joined = _agent(Path(tmp), "one"), _agent(Path(tmp), "joined")
        for topic, payload in wire:
            one_by_one.ingest.handle(topic, payload)

        calls: list[list[Reading]] = []
        deliver = joined.ingest.on_readings

        def spy(readings: list[Reading]) -> None:
            calls.append(readings)
            deliver(readings)

        joined.ingest.on_readings = spy
        batch = []
        for topic, payload in wire:
            message = paho.MQTTMessage(topic=topic.encode())
            message.payload = payload
            batch.append(message)
        saved, edge.ingest.RUN_POSITIONS = edge.ingest.RUN_POSITIONS, cap
        try:
            while batch:
                batch = batch[joined.ingest._handle_for_a_while(batch) :]
        finally:
            edge.ingest.RUN_POSITIONS = saved

        assert _results(joined) == _results(one_by_one)
        sent = [[p["tag"] for p in body["positions"]] for topic, body in sequence if topic == RTLS_TOPIC]
        given_tags = [[p.tag for p in r.positions] for rs in calls for r in rs if isinstance(r, PositionsReading)]
        assert [t for tags in given_tags for t in tags] == [t for tags in sent for t in tags]
        for tags in given_tags:  # a tag twice only in a batch that came so, alone
            assert len(set(tags)) == len(tags) or tags in sent


def _batch(device: str, tags: list[str], second: int = 0, skew: bool = False) -> PositionsReading:
    ts = T0 + timedelta(seconds=second)
    n = len(tags)
    x, y, z, q, bat = (np.full(n, v) for v in (1.0, 2.0, 0.0, float("nan"), 50.0))
    columns = PositionColumns.build(tags, [ts] * n, x, y, z, q, bat)
    return PositionsReading(device=device, ts=ts, clock_skew=skew, positions=Positions(columns=columns))


def test_a_run_joins_batches_of_one_gateway_with_no_tag_twice() -> None:
    run = _JoinedBatches()
    first, second = _batch("rtls-1", ["a", "b"]), _batch("rtls-1", ["c"], second=1)
    assert run.add([first]) and run.add([second])
    assert not run.add([_batch("rtls-1", ["b"])]), "a tag the run holds"
    assert not run.add([_batch("rtls-2", ["d"])]), "another gateway"
    assert not run.add([_batch("rtls-1", ["e"], skew=True)]), "another clock verdict"
    assert not run.add([_batch("rtls-1", ["e"]), _batch("rtls-1", ["f"])]), "a message of two readings"
    vitals = VitalsReading(device="wb-1", ts=T0, band="W-1", hr=70)
    assert not run.add([vitals])
    (joined,) = run.take()
    assert isinstance(joined, PositionsReading)
    assert [p.tag for p in joined.positions] == ["a", "b", "c"]
    assert joined.ts == second.ts and joined.device == "rtls-1"
    assert run.take() == []
    assert not run.add([_batch("rtls-1", ["x", "x"])]), "a batch naming a tag twice goes alone"
    assert run.add([_batch("rtls-1", ["x"])])


def test_a_run_stops_at_its_size() -> None:
    run = _JoinedBatches()
    cap = edge.ingest.RUN_POSITIONS
    assert run.add([_batch("rtls-1", [f"t{i}" for i in range(cap - 1)])])
    assert not run.add([_batch("rtls-1", ["u", "v"])])
    assert run.add([_batch("rtls-1", ["u"])])
    (joined,) = run.take()
    assert isinstance(joined, PositionsReading) and len(joined.positions) == cap
    big = _batch("rtls-1", [f"t{i}" for i in range(cap + 5)])
    assert run.add([big]), "a batch larger than a run still goes, alone"
    assert run.take() == [big]
