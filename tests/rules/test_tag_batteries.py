"""Tag battery levels in RTLS batches reach the low-battery rule as they did position by position.

`RuleEngine._tag_batteries` decides for a whole batch at once which levels to hand to
`devices.battery` (at or under the threshold, or the tag's alert active); a batch naming a tag
twice goes position by position, since the first level can raise the alert the second releases.
The reference is the loop it replaced; both engines must emit the same transitions.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge.rules import RuleEngine
from gridwatch.contract import AlertTransition, Position, PositionsReading, SubjectKind
from gridwatch.contract.readings import PositionColumns, Positions

from . import at, demo_engine


class _Reference(RuleEngine):
    def _tag_batteries(self, r: PositionsReading, now: datetime) -> None:
        threshold = self.view.param("device.low_battery", "threshold")
        for pos in r.positions:
            if pos.bat is None:
                continue
            if pos.bat <= threshold or self.book.get("device.low_battery", SubjectKind.DEVICE, pos.tag):
                person = self.view.by_tag.get(pos.tag)
                self.devices.battery(pos.tag, pos.bat, now, grid=person.grid if person else None)


def _reference() -> RuleEngine:
    engine = demo_engine()
    engine.__class__ = _Reference
    return engine


def _summary(out: list[AlertTransition]) -> list[tuple[str, str, str, object]]:
    return [(t.rule, t.subject.id, t.state, t.detail.get("battery")) for t in out if t.rule == "device.low_battery"]


levels = st.one_of(st.none(), st.sampled_from([0.0, 5.0, 19.999, 20.0, 20.001, 50.0, 100.0]), st.floats(0, 100))
tag = st.sampled_from(["T-0001", "T-0002", "T-S001", "T-9999"])


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(st.tuples(tag, levels), max_size=5), min_size=1, max_size=6), st.booleans())
def test_batch_levels_raise_and_release_as_position_by_position(
    batches: list[list[tuple[str, float | None]]], as_columns: bool
) -> None:
    engine, reference = demo_engine(), _reference()
    for k, batch in enumerate(batches):
        now = at(k) + timedelta(seconds=k)
        positions = tuple(Position(tag=t, ts=now, x=30.0, y=80.0, bat=b) for t, b in batch)
        held = Positions(columns=PositionColumns.of(positions)) if as_columns else positions
        reading = PositionsReading(device="rtls-w1", ts=now, positions=held)
        assert _summary(engine.on_readings([reading], now)) == _summary(reference.on_readings([reading], now))


def test_a_tag_low_then_charged_in_one_batch_raises_and_releases() -> None:
    engine = demo_engine()
    now = at(0)
    low = Position(tag="T-0001", ts=now, x=30.0, y=80.0, bat=5)
    charged = Position(tag="T-0001", ts=now, x=30.0, y=80.0, bat=90)
    out = engine.on_readings([PositionsReading(device="rtls-w1", ts=now, positions=(low, charged))], now)
    assert [t.state for t in out if t.rule == "device.low_battery"] == ["active"]
    assert engine.book.get("device.low_battery", SubjectKind.DEVICE, "T-0001") is not None
    assert engine.book.active[("device.low_battery", SubjectKind.DEVICE, "T-0001")].cond is False
