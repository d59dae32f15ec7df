"""Device time is kept unless missing or more than CLOCK_SKEW_S from the receive time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

import drivers
from drivers import CLOCK_SKEW_S, DeviceContext
from gridwatch.contract import Family, PositionsReading, format_ts

NOW = datetime(2026, 11, 23, 6, 0, 0, tzinfo=UTC)
CTX = DeviceContext(id="cam-1", family=Family.CAMERA)


def parse_at(ts_json: str | None) -> tuple[datetime, bool]:
    ts_part = "" if ts_json is None else f'"ts":{ts_json},'
    (reading,) = drivers.parse(CTX, "t/event", f'{{{ts_part}"camera":"cam-1","event":"tamper"}}'.encode(), NOW)
    return reading.ts, reading.clock_skew


def test_clock_skew_constant_is_five_minutes() -> None:
    assert CLOCK_SKEW_S == 300


@pytest.mark.parametrize("offset_s", [-300, -299.5, 0, 120, 300])
def test_device_time_within_the_window_is_kept(offset_s: float) -> None:
    device_ts = NOW + timedelta(seconds=offset_s)
    assert parse_at(f'"{format_ts(device_ts)}"') == (device_ts, False)


@pytest.mark.parametrize("offset_s", [-301, 300.001, 3600, -86400 * 365])
def test_device_time_outside_the_window_becomes_receive_time(offset_s: float) -> None:
    device_ts = NOW + timedelta(seconds=offset_s)
    assert parse_at(f'"{format_ts(device_ts)}"') == (NOW, True)


def test_missing_ts_is_receive_time_with_skew() -> None:
    assert parse_at(None) == (NOW, True)


def test_epoch_seconds_are_accepted() -> None:
    assert parse_at(str(NOW.timestamp() - 1.5)) == (NOW - timedelta(seconds=1.5), False)


@pytest.mark.parametrize(
    "ts", ["0", "-5", "99999999999", "1e300", '"0001-01-01T00:00:00+14:00"', '"9999-12-31T23:59:59-14:00"']
)
def test_unset_or_absurd_device_clock_is_skew_not_an_error(ts: str) -> None:
    assert parse_at(ts) == (NOW, True)


def test_offset_timestamps_are_normalised_to_utc() -> None:
    ts, skew = parse_at('"2026-11-23T14:00:05+08:00"')
    assert (ts, skew) == (NOW + timedelta(seconds=5), False)
    assert ts.utcoffset() == timedelta(0)


def test_position_with_skewed_own_time_marks_the_batch() -> None:
    ctx = DeviceContext(id="rtls-1", family=Family.RTLS)
    payload = f'{{"ts":"{format_ts(NOW)}","positions":[{{"tag":"T-1","x":1,"y":2,"ts":0}}]}}'
    (reading,) = drivers.parse(ctx, "t/positions", payload.encode(), NOW)
    assert isinstance(reading, PositionsReading)
    assert reading.clock_skew
    assert reading.positions[0].ts == NOW


def test_naive_receive_time_is_a_caller_bug() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        drivers.parse(CTX, "t/event", b"{}", datetime(2026, 1, 1))


def test_driver_error_pickles_with_its_reason() -> None:
    import pickle

    err = pickle.loads(pickle.dumps(drivers.DriverError("bad_parity", "wiegand26: trailing odd parity bit is wrong")))
    assert (err.reason, err.message, str(err)) == (
        "bad_parity",
        "wiegand26: trailing odd parity bit is wrong",
        "bad_parity: wiegand26: trailing odd parity bit is wrong",
    )
