"""Any bytes and any JSON object give readings or a DriverError with a known reason, nothing else."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, get_args

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import drivers
from drivers import DeviceContext, DriverError, Reason
from gridwatch.contract import READING_ADAPTER, Family

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
NOW = datetime(2026, 11, 23, 6, 0, 0, tzinfo=UTC)
REASONS = set(get_args(Reason))

CONTEXTS = [
    DeviceContext(id="ir-1", family=Family.PERIMETER_IR),
    DeviceContext(
        id="panel-1", family=Family.PERIMETER_IR, format="contact_id", contact_id={("1234", 15): ("ir-s-01", 2)}
    ),
    DeviceContext(id="acc-1", family=Family.ACCESS),
    DeviceContext(id="rtls-1", family=Family.RTLS),
    DeviceContext(id="wb-1", family=Family.WRISTBAND),
    DeviceContext(id="cam-1", family=Family.CAMERA),
]
TOPIC_ENDS = ["event", "positions", "telemetry", "status", "other"]

KEYS = [
    "ts", "detector", "beam", "state", "door", "reader", "event", "card", "direction", "positions", "tag",
    "x", "y", "z", "q", "bat", "band", "hr", "temp", "strap", "gps", "lat", "lon", "acc_m", "camera", "active",
]  # fmt: skip

VALID: dict[Family, dict[str, Any]] = {
    Family.PERIMETER_IR: {"ts": "2026-11-23T06:00:00Z", "detector": "ir-1", "beam": 2, "state": "alarm"},
    Family.ACCESS: {"door": "D-1", "reader": "rd-1", "event": "granted", "card": "7:9", "direction": "in"},
    Family.RTLS: {"ts": 1795500000, "positions": [{"tag": "T-1", "x": 1.5, "y": 2.5, "q": 0.5, "bat": 50}]},
    Family.WRISTBAND: {"band": "W-1", "hr": 70, "temp": 36.6, "strap": "closed", "gps": {"lat": 1, "lon": 2}},
    Family.CAMERA: {"camera": "cam-1", "event": "motion", "active": True},
}

scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(10**30), 10**30)
    | st.floats()
    | st.text(max_size=20)
    | st.sampled_from(["alarm", "granted", "closed", "motion", "sos", "in", "2026-11-23T06:00:00Z", "wiegand26:01"])
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=5), inner, max_size=5)
    ),
    max_leaves=20,
)
json_objects = st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=8), json_values, max_size=8)


def check(ctx: DeviceContext, topic_end: str, payload: bytes) -> None:
    """parse either returns valid readings of this device or raises DriverError with a known reason."""
    try:
        readings = drivers.parse(ctx, f"site/s/x/{ctx.id}/{topic_end}", payload, NOW)
    except DriverError as err:
        assert err.reason in REASONS
        # the catch-all in drivers.parse turns a parser bug into a dead letter; the fuzzers must never reach it
        assert not err.message.startswith("unparseable payload"), err.message
        return
    assert readings
    for reading in readings:
        assert reading.device == ctx.id
        assert reading.ts.utcoffset() is not None
        # a reading is a valid contract value: it survives its own JSON round trip
        assert READING_ADAPTER.validate_json(READING_ADAPTER.dump_json(reading)) == reading


@FUZZ
@given(ctx=st.sampled_from(CONTEXTS), topic_end=st.sampled_from(TOPIC_ENDS), payload=st.binary(max_size=512))
def test_arbitrary_bytes_raise_only_driver_errors(ctx: DeviceContext, topic_end: str, payload: bytes) -> None:
    check(ctx, topic_end, payload)


@FUZZ
@given(ctx=st.sampled_from(CONTEXTS), topic_end=st.sampled_from(TOPIC_ENDS), body=json_objects)
def test_arbitrary_json_objects_raise_only_driver_errors(
    ctx: DeviceContext, topic_end: str, body: dict[str, Any]
) -> None:
    check(ctx, topic_end, json.dumps(body).encode())


@FUZZ
@given(
    ctx=st.sampled_from(CONTEXTS),
    topic_end=st.sampled_from(TOPIC_ENDS),
    key=st.sampled_from(KEYS),
    value=json_values,
)
def test_one_bad_field_in_a_valid_payload_raises_only_driver_errors(
    ctx: DeviceContext, topic_end: str, key: str, value: Any
) -> None:
    body = dict(VALID[ctx.family])
    body[key] = value
    check(ctx, topic_end, json.dumps(body).encode())


@FUZZ
@given(text=st.text(alphabet="0123456789ABCDEF \t", max_size=24))
def test_arbitrary_contact_id_text_raises_only_driver_errors(text: str) -> None:
    check(CONTEXTS[1], "event", text.encode())


@FUZZ
@given(
    when=st.datetimes(),
    offset_min=st.integers(-14 * 60, 14 * 60),
    epoch=st.floats() | st.integers(-(10**20), 10**20),
    use_epoch=st.booleans(),
)
def test_any_timestamp_gives_a_reading_or_driver_error(
    when: datetime, offset_min: int, epoch: float, use_epoch: bool
) -> None:
    sign = "-" if offset_min < 0 else "+"
    text = f"{when.isoformat()}{sign}{abs(offset_min) // 60:02d}:{abs(offset_min) % 60:02d}"
    ts = epoch if use_epoch else text
    body = {"ts": ts, "camera": "cam-1", "event": "motion"}
    check(CONTEXTS[5], "event", json.dumps(body).encode())


def test_valid_payloads_used_by_the_fuzzers_do_parse() -> None:
    for ctx in CONTEXTS:
        end = {Family.RTLS: "positions", Family.WRISTBAND: "telemetry"}.get(ctx.family, "event")
        assert drivers.parse(ctx, f"t/{end}", json.dumps(VALID[ctx.family]).encode(), NOW)


def test_deeply_nested_json_is_not_json_rather_than_a_crash() -> None:
    payload = b'{"band":' + b"[" * 20000 + b"]" * 20000 + b"}"
    try:
        drivers.parse(CONTEXTS[4], "t/telemetry", payload, NOW)
    except DriverError as err:
        assert err.reason in {"not_json", "schema"}
    else:
        raise AssertionError("nested arrays are not a band id")
