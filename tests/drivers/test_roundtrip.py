"""The simulator encoders are the inverse of the drivers: parse(*encode(r)) == [r] for every family."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import drivers
from drivers import CLOCK_SKEW_S, DeviceContext
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
    Reading,
    StatusReading,
    StrapState,
    VitalsReading,
    WristbandEvent,
    WristbandEventReading,
)
from simulators.encoders import encode, encode_status

# -- strategies: device contexts and readings of every family --------------------------------------

NOW = datetime(2026, 11, 23, 6, 0, 0, 250000, tzinfo=UTC)

ids = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,15}", fullmatch=True)
device_ts = st.integers(-CLOCK_SKEW_S * 1000, CLOCK_SKEW_S * 1000).map(lambda ms: NOW + timedelta(milliseconds=ms))


def finite(lo: float, hi: float) -> st.SearchStrategy[float]:
    return st.floats(lo, hi, allow_nan=False, allow_infinity=False)


@st.composite
def timing(draw: st.DrawFn) -> tuple[datetime, bool]:
    """(ts, clock_skew): a good device time, or a device without a (good) clock, stamped on receipt."""
    if draw(st.booleans()):
        return draw(device_ts), False
    return NOW, True


def ctx_of(family: Family) -> st.SearchStrategy[DeviceContext]:
    return ids.map(lambda device: DeviceContext(id=device, family=family))


@st.composite
def perimeter_json(draw: st.DrawFn) -> tuple[DeviceContext, PerimeterReading]:
    ctx = draw(ctx_of(Family.PERIMETER_IR))
    ts, skew = draw(timing())
    reading = PerimeterReading(
        device=ctx.id,
        detector=draw(ids),
        beam=draw(st.integers(1, 64)),
        state=draw(st.sampled_from(PerimeterState)),
        ts=ts,
        clock_skew=skew,
    )
    return ctx, reading


@st.composite
def perimeter_contact_id(draw: st.DrawFn) -> tuple[DeviceContext, PerimeterReading]:
    """A panel with a generated (account, zone) map; Contact ID has no time, so ts is receipt."""
    targets = draw(st.lists(st.tuples(ids, st.integers(1, 64)), min_size=1, max_size=6, unique=True))
    accounts = st.from_regex(r"[0-9B-F]{4}", fullmatch=True)
    keys = draw(
        st.lists(st.tuples(accounts, st.integers(0, 999)), min_size=len(targets), max_size=len(targets), unique=True)
    )
    ctx = DeviceContext(
        id=draw(ids), family=Family.PERIMETER_IR, format="contact_id", contact_id=dict(zip(keys, targets, strict=True))
    )
    detector, beam = draw(st.sampled_from(targets))
    state = draw(st.sampled_from(PerimeterState))
    return ctx, PerimeterReading(device=ctx.id, ts=NOW, detector=detector, beam=beam, state=state)


plain_cards = st.from_regex(r"[0-9A-Za-z:_-]{1,40}", fullmatch=True).filter(lambda c: not c.startswith("wiegand"))
wiegand_cards = st.builds(lambda f, n: f"{f}:{n}", st.integers(0, 255), st.integers(0, 65535))


@st.composite
def access(draw: st.DrawFn) -> tuple[DeviceContext, AccessReading]:
    ctx = draw(ctx_of(Family.ACCESS))
    ts, skew = draw(timing())
    reading = AccessReading(
        device=ctx.id,
        door=draw(ids),
        reader=draw(st.none() | ids),
        event=draw(st.sampled_from(AccessEvent)),
        card=draw(st.none() | plain_cards | wiegand_cards),
        direction=draw(st.none() | st.sampled_from(Direction)),
        ts=ts,
        clock_skew=skew,
    )
    return ctx, reading


@st.composite
def positions(draw: st.DrawFn) -> tuple[DeviceContext, PositionsReading]:
    ctx = draw(ctx_of(Family.RTLS))
    ts, skew = draw(timing())
    items = draw(
        st.lists(
            st.builds(
                Position,
                tag=ids,
                ts=st.just(ts) | device_ts,
                x=finite(-1e6, 1e6),
                y=finite(-1e6, 1e6),
                z=finite(-1e4, 1e4),
                q=st.none() | finite(0, 1),
                bat=st.none() | finite(0, 100),
            ),
            min_size=1,
            max_size=5,
        )
    )
    return ctx, PositionsReading(device=ctx.id, positions=tuple(items), ts=ts, clock_skew=skew)


@st.composite
def vitals(draw: st.DrawFn) -> tuple[DeviceContext, VitalsReading]:
    ctx = draw(ctx_of(Family.WRISTBAND))
    ts, skew = draw(timing())
    gps = st.builds(GpsFix, lat=finite(-90, 90), lon=finite(-180, 180), acc_m=finite(0, 100_000))
    reading = VitalsReading(
        device=ctx.id,
        band=draw(ids),
        hr=draw(st.none() | finite(0, 300)),
        temp=draw(st.none() | finite(25, 45)),
        bat=draw(st.none() | finite(0, 100)),
        strap=draw(st.none() | st.sampled_from(StrapState)),
        gps=draw(st.none() | gps),
        ts=ts,
        clock_skew=skew,
    )
    return ctx, reading


@st.composite
def wristband_events(draw: st.DrawFn) -> tuple[DeviceContext, WristbandEventReading]:
    ctx = draw(ctx_of(Family.WRISTBAND))
    ts, skew = draw(timing())
    event = draw(st.sampled_from(WristbandEvent))
    return ctx, WristbandEventReading(device=ctx.id, band=draw(ids), event=event, ts=ts, clock_skew=skew)


@st.composite
def camera_events(draw: st.DrawFn) -> tuple[DeviceContext, CameraEventReading]:
    ctx = draw(ctx_of(Family.CAMERA))
    ts, skew = draw(timing())
    reading = CameraEventReading(
        device=ctx.id,
        camera=draw(ids),
        event=draw(st.sampled_from(CameraEvent)),
        active=draw(st.booleans()),
        ts=ts,
        clock_skew=skew,
    )
    return ctx, reading


@st.composite
def statuses(draw: st.DrawFn) -> tuple[DeviceContext, StatusReading]:
    ctx = draw(st.sampled_from(Family).flatmap(ctx_of))
    return ctx, StatusReading(device=ctx.id, ts=NOW, online=draw(st.booleans()))


# -- properties and examples -----------------------------------------------------------------------

ROUND_TRIP = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SITE = "demo-prison"


def round_trip(ctx: DeviceContext, reading: Reading, **flags: bool) -> list[Reading]:
    topic, payload = encode(reading, ctx, SITE, **flags)
    assert topic in drivers.device_topics(SITE, ctx)
    return drivers.parse(ctx, topic, payload, NOW)


@ROUND_TRIP
@given(case=perimeter_json() | access() | positions() | vitals() | wristband_events() | camera_events() | statuses())
def test_json_families_round_trip(case: tuple[DeviceContext, Any]) -> None:
    ctx, reading = case
    assert round_trip(ctx, reading) == [reading]


@ROUND_TRIP
@given(case=perimeter_contact_id(), checksum=st.booleans())
def test_contact_id_panel_round_trips_in_both_forms(
    case: tuple[DeviceContext, PerimeterReading], checksum: bool
) -> None:
    ctx, reading = case
    topic, payload = encode(reading, ctx, SITE, checksum=checksum)
    assert len(payload.replace(b" ", b"")) == (16 if checksum else 15)
    assert drivers.parse(ctx, topic, payload, NOW) == [reading]


@ROUND_TRIP
@given(case=access())
def test_access_round_trips_with_wiegand_cards(case: tuple[DeviceContext, AccessReading]) -> None:
    ctx, reading = case
    assert round_trip(ctx, reading, wiegand=True) == [reading]


def test_wiegand_flag_sends_raw_bits_for_a_card_that_fits() -> None:
    ctx = DeviceContext(id="acc-1", family=Family.ACCESS)
    reading = AccessReading(device="acc-1", ts=NOW, door="D-1", event=AccessEvent.GRANTED, card="12:3456")
    topic, payload = encode(reading, ctx, SITE, wiegand=True)
    assert topic == f"site/{SITE}/access/acc-1/event"
    assert b'"card":"wiegand26:' in payload
    assert drivers.parse(ctx, topic, payload, NOW) == [reading]
    too_big = reading.model_copy(update={"card": "300:1"})
    assert b'"card":"300:1"' in encode(too_big, ctx, SITE, wiegand=True)[1]


def test_contact_id_panel_sends_the_contract_text_form() -> None:
    ctx = DeviceContext(
        id="panel-sw", family=Family.PERIMETER_IR, format="contact_id", contact_id={("1234", 15): ("ir-s-01", 2)}
    )
    reading = PerimeterReading(device="panel-sw", ts=NOW, detector="ir-s-01", beam=2, state=PerimeterState.ALARM)
    assert encode(reading, ctx, SITE) == (f"site/{SITE}/perimeter/panel-sw/event", b"1234 18 1130 01 015")
    assert encode(reading, ctx, SITE, checksum=True)[1] == b"123418113001015E"
    unmapped = reading.model_copy(update={"beam": 1})
    with pytest.raises(ValueError, match="no Contact ID zone"):
        encode(unmapped, ctx, SITE)


def test_encode_status_uses_the_status_topic() -> None:
    ctx = DeviceContext(id="wb-w1", family=Family.WRISTBAND)
    assert encode_status(ctx, SITE, False) == (f"site/{SITE}/wristband/wb-w1/status", b"offline")
    assert encode_status(ctx, SITE, True)[1] == b"online"


def test_reading_of_another_device_or_family_is_refused() -> None:
    reading = VitalsReading(device="wb-1", ts=NOW, band="W-1")
    with pytest.raises(ValueError, match="cannot be published"):
        encode(reading, DeviceContext(id="wb-2", family=Family.WRISTBAND), SITE)
    with pytest.raises(ValueError, match="cannot come from"):
        encode(reading, DeviceContext(id="wb-1", family=Family.CAMERA), SITE)
