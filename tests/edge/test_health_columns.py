"""Tag batteries reach the device health tracker from a batch's columns, as from its Positions.

The tracker reads `columns_of(reading.positions)` instead of iterating Position objects (which a
driver-made batch would have to build for it). The reference is the loop it replaced; for batches
with tags repeated, tracked or not, levels absent, rounding to the same whole percent or not, held
as columns or as Position objects, both trackers must report the same health and the same changes.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from edge.health import DeviceHealthTracker
from gridwatch.config.models import Device
from gridwatch.contract import Family, Position, PositionsReading
from gridwatch.contract.readings import PositionColumns, Positions

T0 = datetime(2026, 11, 23, 6, 0, tzinfo=UTC)
TRACKED = ["T-0001", "T-0002", "T-0003"]


def _tracker() -> DeviceHealthTracker:
    return DeviceHealthTracker([Device(id=tag, family=Family.RTLS) for tag in TRACKED])


def _reference_on_positions(tracker: DeviceHealthTracker, reading: PositionsReading) -> None:
    """The tracker's loop before it read columns: one Position at a time."""
    for pos in reading.positions:
        if pos.bat is not None:
            tracker._set_battery(pos.tag, pos.bat)


position = st.builds(
    Position,
    tag=st.sampled_from([*TRACKED, "T-9999"]),  # and a tag the tracker does not follow
    ts=st.just(T0),
    x=st.floats(-100, 100),
    y=st.floats(-100, 100),
    bat=st.one_of(st.none(), st.floats(0, 100), st.sampled_from([49.5, 50.49, 50.5, 12.0])),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.lists(position, max_size=8), st.booleans()), min_size=1, max_size=6))
def test_batteries_from_columns_equal_batteries_from_positions(batches: list[tuple[list[Position], bool]]) -> None:
    fast, slow = _tracker(), _tracker()
    for k, (positions, as_columns) in enumerate(batches):
        now = T0 + timedelta(seconds=k)
        held = Positions(columns=PositionColumns.of(positions)) if as_columns else tuple(positions)
        reading = PositionsReading(device="rtls-gw", ts=now, positions=held)
        fast.on_reading(reading, now)
        _reference_on_positions(slow, reading)
        assert fast.health() == slow.health()
        assert fast._changed == slow._changed
        fast._changed = slow._changed = False
