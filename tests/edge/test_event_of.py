"""The DeviceEvent a reading becomes is constructed without validation: it equals the validated one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from edge.batching import event_of
from gridwatch.contract import (
    AccessEvent,
    AccessReading,
    CameraEvent,
    CameraEventReading,
    DeviceEvent,
    Direction,
    PerimeterReading,
    PerimeterState,
    Reading,
    StatusReading,
    WristbandEvent,
    WristbandEventReading,
)

T0 = datetime(2026, 11, 25, 6, 0, tzinfo=UTC)
ids = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,20}", fullmatch=True)
times = st.integers(-(10**6), 10**6).map(lambda s: T0 + timedelta(seconds=s))
common = {"device": ids, "ts": times, "clock_skew": st.booleans()}
readings = st.one_of(
    st.builds(PerimeterReading, detector=ids, beam=st.integers(1, 64), state=st.sampled_from(list(PerimeterState)),
              **common),
    st.builds(AccessReading, door=ids, reader=st.none() | ids, event=st.sampled_from(list(AccessEvent)),
              card=st.none() | st.text(max_size=80), direction=st.none() | st.sampled_from(list(Direction)), **common),
    st.builds(WristbandEventReading, band=ids, event=st.sampled_from(list(WristbandEvent)), **common),
    st.builds(CameraEventReading, camera=ids, event=st.sampled_from(list(CameraEvent)), active=st.booleans(),
              **common),
    st.builds(StatusReading, online=st.booleans(), **common),
)  # fmt: skip


@given(readings)
def test_the_constructed_event_equals_the_validated_one(reading: Reading) -> None:
    event = event_of(reading)
    assert event is not None
    validated = DeviceEvent.model_validate(event.model_dump())
    assert event == validated
    assert event.model_dump_json() == validated.model_dump_json()
