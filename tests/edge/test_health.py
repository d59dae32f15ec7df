"""Device health: online from status and traffic, offline after silence, battery, body on change."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from edge.health import DeviceHealthTracker
from gridwatch.config.models import Device
from gridwatch.contract import DeviceHealth, Family, Position, PositionsReading, StatusReading, VitalsReading

T0 = datetime(2026, 11, 23, 6, 0, tzinfo=UTC)


def _tracker() -> DeviceHealthTracker:
    return DeviceHealthTracker(
        [
            Device(id="ir-1", family=Family.PERIMETER_IR, expected_interval_s=60),
            Device(id="W-0001", family=Family.WRISTBAND),
            Device(id="T-0001", family=Family.RTLS),
        ]
    )


def _by_id(tracker: DeviceHealthTracker) -> dict[str, DeviceHealth]:
    return {h.id: h for h in tracker.health()}


def test_first_body_is_due_at_once_then_only_on_change_or_after_a_minute() -> None:
    tracker = _tracker()
    first = tracker.body_if_due(T0)
    assert first is not None and {d.id for d in first.devices} == {"ir-1", "W-0001", "T-0001"}
    assert all(not d.online for d in first.devices)
    assert tracker.body_if_due(T0 + timedelta(seconds=5)) is None
    tracker.on_traffic("ir-1", T0 + timedelta(seconds=6))
    changed = tracker.body_if_due(T0 + timedelta(seconds=6))
    assert changed is not None
    assert next(d for d in changed.devices if d.id == "ir-1").online
    assert tracker.body_if_due(T0 + timedelta(seconds=30)) is None
    again = tracker.body_if_due(T0 + timedelta(seconds=66))
    assert again is not None and again.event_id != changed.event_id


def test_status_offline_wins_until_the_device_talks_again() -> None:
    tracker = _tracker()
    tracker.on_reading(StatusReading(device="ir-1", ts=T0, online=True), T0)
    health = _by_id(tracker)
    assert health["ir-1"].online and health["ir-1"].last_seen == T0
    tracker.on_reading(StatusReading(device="ir-1", ts=T0, online=False), T0 + timedelta(seconds=1))
    assert not _by_id(tracker)["ir-1"].online
    tracker.on_traffic("ir-1", T0 + timedelta(seconds=2))
    assert _by_id(tracker)["ir-1"].online


def test_silence_of_three_intervals_marks_offline() -> None:
    tracker = _tracker()
    tracker.on_traffic("ir-1", T0)
    tracker.tick(T0 + timedelta(seconds=179))
    assert _by_id(tracker)["ir-1"].online
    tracker.tick(T0 + timedelta(seconds=181))
    assert not _by_id(tracker)["ir-1"].online


def test_devices_without_expected_interval_never_time_out() -> None:
    tracker = _tracker()
    tracker.on_traffic("W-0001", T0)
    tracker.tick(T0 + timedelta(days=2))
    assert _by_id(tracker)["W-0001"].online


def test_battery_from_vitals_and_positions_of_configured_devices() -> None:
    tracker = _tracker()
    tracker.on_reading(VitalsReading(device="wb-gw", ts=T0, band="W-0001", bat=41.0), T0)
    tracker.on_reading(
        PositionsReading(device="rtls-gw", ts=T0, positions=(Position(tag="T-0001", ts=T0, x=1, y=2, bat=12),)), T0
    )
    health = _by_id(tracker)
    assert health["W-0001"].battery == 41.0
    assert health["T-0001"].battery == 12
    assert health["ir-1"].battery is None


def test_dead_letters_counted_per_device_and_unknown_ignored() -> None:
    tracker = _tracker()
    tracker.on_dead_letter("ir-1")
    tracker.on_dead_letter("ir-1")
    tracker.on_dead_letter("nobody")
    tracker.on_traffic("nobody", T0)
    assert "nobody" not in tracker
    health = _by_id(tracker)
    assert health["ir-1"].dead_letters == 2
    summary = tracker.summary()
    assert summary["count"] == 3
    assert next(d for d in summary["devices"] if d["id"] == "ir-1")["dead_letters"] == 2
