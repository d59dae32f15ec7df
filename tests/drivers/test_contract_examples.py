"""The payload examples of CONTRACT §2 parse to the right readings."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

import drivers
from drivers import DeviceContext, DriverError
from gridwatch.contract import (
    AccessEvent,
    AccessReading,
    CameraEvent,
    CameraEventReading,
    Direction,
    Family,
    GpsFix,
    PerimeterReading,
    PerimeterState,
    Position,
    PositionsReading,
    StatusReading,
    StrapState,
    VitalsReading,
    WristbandEvent,
    WristbandEventReading,
)

NOW = datetime(2026, 11, 23, 6, 0, 10, tzinfo=UTC)
DEVICE_TS = datetime(2026, 11, 23, 6, 0, 0, 123000, tzinfo=UTC)
TS = '"ts":"2026-11-23T06:00:00.123Z"'


def ctx(family: Family, device: str = "dev-1") -> DeviceContext:
    return DeviceContext(id=device, family=family)


def test_perimeter_json_example_parses_with_beam() -> None:
    payload = ("{" + TS + ',"detector":"ir-n-03","beam":2,"state":"alarm"}').encode()
    readings = drivers.parse(ctx(Family.PERIMETER_IR, "ir-n-03"), "site/s/perimeter/ir-n-03/event", payload, NOW)
    assert readings == [
        PerimeterReading(device="ir-n-03", ts=DEVICE_TS, detector="ir-n-03", beam=2, state=PerimeterState.ALARM)
    ]


def test_perimeter_beam_defaults_to_one() -> None:
    payload = b'{"ts":1795500000,"detector":"ir-n-03","state":"tamper"}'
    received = datetime.fromtimestamp(1795500005, UTC)
    (reading,) = drivers.parse(ctx(Family.PERIMETER_IR), "t/event", payload, received)
    assert isinstance(reading, PerimeterReading)
    assert reading.beam == 1
    assert reading.state is PerimeterState.TAMPER
    assert reading.ts == datetime.fromtimestamp(1795500000, UTC)
    assert reading.device == "dev-1"


def test_access_example_parses_plain_card() -> None:
    payload = "{" + TS + ',"door":"D-12","reader":"rd-12","event":"granted","card":"0012345","direction":"in"}'
    (reading,) = drivers.parse(ctx(Family.ACCESS), "site/s/access/dev-1/event", payload.encode(), NOW)
    assert reading == AccessReading(
        device="dev-1",
        ts=DEVICE_TS,
        door="D-12",
        reader="rd-12",
        event=AccessEvent.GRANTED,
        card="0012345",
        direction=Direction.IN,
    )


def test_rtls_batch_example_parses_every_position() -> None:
    payload = (
        "{" + TS + ',"positions":[{"tag":"T-0001","x":12.31,"y":4.02,"z":0.0,"q":0.93,"bat":87},'
        '{"tag":"T-0002","x":1,"y":2,"ts":"2026-11-23T06:00:01Z"}]}'
    )
    (reading,) = drivers.parse(ctx(Family.RTLS), "site/s/rtls/dev-1/positions", payload.encode(), NOW)
    assert reading == PositionsReading(
        device="dev-1",
        ts=DEVICE_TS,
        positions=(
            Position(tag="T-0001", ts=DEVICE_TS, x=12.31, y=4.02, z=0.0, q=0.93, bat=87),
            Position(tag="T-0002", ts=datetime(2026, 11, 23, 6, 0, 1, tzinfo=UTC), x=1, y=2),
        ),
    )


def test_rtls_single_position_without_wrapper_is_a_batch_of_one() -> None:
    payload = b'{"tag":"T-0001","x":12.31,"y":4.02}'
    (reading,) = drivers.parse(ctx(Family.RTLS), "site/s/rtls/dev-1/positions", payload, NOW)
    assert isinstance(reading, PositionsReading)
    assert reading.clock_skew
    assert reading.positions == (Position(tag="T-0001", ts=NOW, x=12.31, y=4.02),)


def test_wristband_telemetry_example() -> None:
    payload = (
        "{" + TS + ',"band":"W-0001","hr":72,"temp":36.4,"bat":80,"strap":"closed",'
        '"gps":{"lat":31.2,"lon":121.5,"acc_m":8}}'
    )
    (reading,) = drivers.parse(ctx(Family.WRISTBAND), "site/s/wristband/dev-1/telemetry", payload.encode(), NOW)
    assert reading == VitalsReading(
        device="dev-1",
        ts=DEVICE_TS,
        band="W-0001",
        hr=72,
        temp=36.4,
        bat=80,
        strap=StrapState.CLOSED,
        gps=GpsFix(lat=31.2, lon=121.5, acc_m=8),
    )


def test_wristband_telemetry_only_band_is_required() -> None:
    (reading,) = drivers.parse(ctx(Family.WRISTBAND), "a/b/telemetry", b'{"band":"W-0001"}', NOW)
    assert reading == VitalsReading(device="dev-1", ts=NOW, clock_skew=True, band="W-0001")


def test_wristband_event_topic_gives_an_event_reading() -> None:
    payload = ("{" + TS + ',"band":"W-0001","event":"sos"}').encode()
    (reading,) = drivers.parse(ctx(Family.WRISTBAND), "site/s/wristband/dev-1/event", payload, NOW)
    assert reading == WristbandEventReading(device="dev-1", ts=DEVICE_TS, band="W-0001", event=WristbandEvent.SOS)


def test_camera_event_example() -> None:
    payload = ("{" + TS + ',"camera":"cam-3","event":"motion","active":true}').encode()
    (reading,) = drivers.parse(ctx(Family.CAMERA, "cam-3"), "site/s/camera/cam-3/event", payload, NOW)
    assert reading == CameraEventReading(device="cam-3", ts=DEVICE_TS, camera="cam-3", event=CameraEvent.MOTION)


@pytest.mark.parametrize("family", list(Family))
@pytest.mark.parametrize(("body", "online"), [(b"online", True), (b"offline", False), (b" Offline\n", False)])
def test_status_topic_of_any_family_gives_status(family: Family, body: bytes, online: bool) -> None:
    readings = drivers.parse(ctx(family), f"site/s/{family.value}/dev-1/status", body, NOW)
    assert readings == [StatusReading(device="dev-1", ts=NOW, online=online)]


def test_status_with_another_word_is_bad_format() -> None:
    with pytest.raises(DriverError) as err:
        drivers.parse(ctx(Family.CAMERA), "site/s/camera/dev-1/status", b"sleeping", NOW)
    assert err.value.reason == "bad_format"


@pytest.mark.parametrize(
    ("family", "topic", "payload", "reason"),
    [
        (Family.PERIMETER_IR, "t/event", b"\xff\xfe", "not_utf8"),
        (Family.PERIMETER_IR, "t/event", b"{not json", "not_json"),
        (Family.PERIMETER_IR, "t/event", b"[1, 2]", "schema"),
        (Family.PERIMETER_IR, "t/event", b'{"detector":"ir-1","state":"exploded"}', "schema"),
        (Family.PERIMETER_IR, "t/event", b'{"detector":"ir-1","state":"alarm","beam":"2"}', "schema"),
        (Family.PERIMETER_IR, "t/event", b'{"detector":"ir-1","state":"alarm","ts":"yesterday"}', "schema"),
        (Family.WRISTBAND, "t/telemetry", b'{"band":"W-1","hr":-5}', "out_of_range"),
        (Family.WRISTBAND, "t/telemetry", b'{"band":"W-1","hr":301}', "out_of_range"),
        (Family.WRISTBAND, "t/telemetry", b'{"band":"W-1","temp":24.9}', "out_of_range"),
        (Family.WRISTBAND, "t/telemetry", b'{"band":"W-1","temp":45.1}', "out_of_range"),
        (Family.WRISTBAND, "t/telemetry", b'{"band":"W-1","bat":101}', "out_of_range"),
        (Family.WRISTBAND, "t/telemetry", b'{"band":"W-1","gps":{"lat":91,"lon":0}}', "out_of_range"),
        (Family.WRISTBAND, "t/telemetry", b'{"band":"W-1","gps":{"lat":0,"lon":-180.5}}', "out_of_range"),
        (Family.RTLS, "t/positions", b'{"tag":"T-1","x":NaN,"y":0}', "out_of_range"),
        (Family.RTLS, "t/positions", b'{"tag":"T-1","x":1e999,"y":0}', "out_of_range"),
        (Family.RTLS, "t/positions", b'{"tag":"T-1","x":0,"y":0,"q":1.5}', "out_of_range"),
        (Family.RTLS, "t/positions", b'{"tag":"T-1","x":0,"y":0,"vendor":-Infinity}', "out_of_range"),
        (Family.RTLS, "t/positions", b'{"positions":[]}', "schema"),
        (Family.CAMERA, "t/event", b'{"camera":"c","event":"motion","active":"yes"}', "schema"),
        (Family.ACCESS, "t/event", b'{"door":"D-1","event":"granted","card":12345}', "schema"),
    ],
)
def test_bad_input_is_rejected_with_its_reason(family: Family, topic: str, payload: bytes, reason: str) -> None:
    with pytest.raises(DriverError) as err:
        drivers.parse(ctx(family), topic, payload, NOW)
    assert err.value.reason == reason
    assert err.value.message


def test_payload_over_64_kib_is_too_large() -> None:
    payload = b'{"band":"W-1","pad":"' + b"x" * 65536 + b'"}'
    with pytest.raises(DriverError) as err:
        drivers.parse(ctx(Family.WRISTBAND), "t/telemetry", payload, NOW)
    assert err.value.reason == "too_large"


def test_vendor_keys_are_ignored() -> None:
    payload = b'{"detector":"ir-1","state":"fault","vendor":{"fw":"1.2"}}'
    (reading,) = drivers.parse(ctx(Family.PERIMETER_IR), "t/event", payload, NOW)
    assert isinstance(reading, PerimeterReading)
    assert reading.state is PerimeterState.FAULT
