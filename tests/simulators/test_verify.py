"""sim verify's judgement: which alert answers which expectation, and when a run is settled."""

from __future__ import annotations

from simulators.cli import Outcome, Seen, matches, settled, verify_outcomes
from simulators.scenario import Expect

ITEM = {
    "rule": "perimeter.intrusion",
    "level": "high",
    "condition": "active",
    "zone": "perim-north",
    "subject": {"kind": "zone", "id": "perim-north"},
    "title": "Perimeter beam break",
}


def test_matching_by_rule_level_zone_and_subject() -> None:
    assert matches(Expect(rule="perimeter.intrusion"), ITEM)
    assert matches(Expect(rule="perimeter.intrusion", level="high", zone="perim-north", subject="perim-north"), ITEM)
    assert not matches(Expect(rule="perimeter.intrusion", level="medium"), ITEM)
    assert not matches(Expect(rule="perimeter.tamper"), ITEM)
    assert not matches(Expect(rule="perimeter.intrusion", zone="perim-east"), ITEM)
    assert not matches(Expect(rule="perimeter.intrusion"), {**ITEM, "condition": "cleared"})
    assert matches(Expect(level="high", absent=True), ITEM)  # expect_none: any rule


def test_latency_is_from_publication_and_late_alerts_fail() -> None:
    fast = Outcome(0, 1.0, Expect(rule="perimeter.intrusion", within_s=1.0), published=100.0)
    slow = Outcome(1, 2.0, Expect(rule="perimeter.intrusion", level="high", within_s=1.0), published=100.0)
    verify_outcomes([fast, slow], [Seen(100.2, ITEM | {"level": "medium"}), Seen(101.5, ITEM)])
    assert fast.ok and fast.latency_s is not None and abs(fast.latency_s - 0.2) < 1e-9
    assert slow.seen is not None and not slow.ok  # arrived, but 1.5 s > 1 s


def test_alerts_before_the_step_do_not_count() -> None:
    o = Outcome(0, 5.0, Expect(rule="perimeter.intrusion"), published=100.0)
    verify_outcomes([o], [Seen(90.0, ITEM)])
    assert o.seen is None and not o.ok


def test_quiet_windows() -> None:
    quiet = Outcome(0, 0.0, Expect(level="high", within_s=10, absent=True), published=100.0)
    verify_outcomes([quiet], [Seen(111.0, ITEM)])  # after the window: fine
    assert quiet.ok
    assert not settled([quiet], 105.0) and settled([quiet], 110.5)
    verify_outcomes([quiet], [Seen(104.0, ITEM)])
    assert not quiet.ok
