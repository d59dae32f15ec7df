"""Alarm-system health (EEMUA 191 style) computed from plain records; no store access here."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

BUCKET = timedelta(minutes=10)
FLOOD_ALARMS = 10  # EEMUA 191: more than 10 alarms in 10 minutes is a flood
CHATTER_COUNT = 3
CHATTER_WINDOW = timedelta(seconds=60)
STANDING_AFTER = timedelta(hours=24)


@dataclass(frozen=True, slots=True)
class AlarmRecord:
    id: str
    rule: str
    level: str
    area: str | None
    grid: str | None
    zone: str | None
    subject: str  # "<kind>:<id>"
    first_seen: datetime
    resolution: str | None


@dataclass(frozen=True, slots=True)
class WalkTestRecord:
    zone: str
    started: datetime
    until: datetime


@dataclass(frozen=True, slots=True)
class AckRecord:
    actor: str
    action: str
    ts: datetime
    first_seen: datetime


def rate(counts: Sequence[int], buckets: int) -> dict[str, float | int]:
    """Average and peak alarms per 10-minute bucket."""
    total = sum(counts)
    return {
        "alarms": total,
        "per_10min_avg": round(total / buckets, 3) if buckets else 0.0,
        "per_10min_peak": max(counts, default=0),
    }


def _buckets(alarms: Iterable[AlarmRecord], start: datetime, n: int) -> list[int]:
    counts = [0] * n
    for alarm in alarms:
        index = int((alarm.first_seen - start) / BUCKET)
        if 0 <= index < n:
            counts[index] += 1
    return counts


def _per(alarms: Sequence[AlarmRecord], key: str, start: datetime, n: int) -> dict[str, dict[str, float | int]]:
    groups: dict[str, list[AlarmRecord]] = defaultdict(list)
    for alarm in alarms:
        value = getattr(alarm, key)
        if value is not None:
            groups[value].append(alarm)
    return {name: rate(_buckets(group, start, n), n) for name, group in sorted(groups.items())}


def chattering(alarms: Sequence[AlarmRecord]) -> list[dict[str, Any]]:
    """(rule, subject) pairs with ≥3 activations inside any 60 s window."""
    by_pair: dict[tuple[str, str], list[datetime]] = defaultdict(list)
    for alarm in alarms:
        by_pair[(alarm.rule, alarm.subject)].append(alarm.first_seen)
    found = []
    for (rule, subject), times in sorted(by_pair.items()):
        times.sort()
        best = 0
        left = 0
        for right, ts in enumerate(times):
            while ts - times[left] > CHATTER_WINDOW:
                left += 1
            best = max(best, right - left + 1)
        if best >= CHATTER_COUNT:
            found.append({"rule": rule, "subject": subject, "activations": len(times), "max_in_60s": best})
    return found


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def perimeter_zone(
    zone: str, alarms: Sequence[AlarmRecord], walk_tests: Sequence[WalkTestRecord], test_hits: Sequence[datetime]
) -> dict[str, Any]:
    """Nuisance and false-alarm rate from resolutions; probability of detection from walk tests."""
    resolved = Counter(a.resolution for a in alarms if a.resolution is not None)
    judged = sum(resolved.values()) - resolved.get("test", 0)
    detected = sum(1 for w in walk_tests if any(w.started <= hit <= w.until for hit in test_hits))
    return {
        "zone": zone,
        "alarms": len(alarms),
        "resolved": sum(resolved.values()),
        "real": resolved.get("real", 0),
        "nuisance": resolved.get("nuisance", 0),
        "false": resolved.get("false", 0),
        "nuisance_rate": _ratio(resolved.get("nuisance", 0), judged),
        "false_alarm_rate": _ratio(resolved.get("false", 0), judged),
        "walk_tests": len(walk_tests),
        "walk_tests_detected": detected,
        "probability_of_detection": _ratio(detected, len(walk_tests)),
    }


def operators(records: Sequence[AckRecord]) -> dict[str, dict[str, Any]]:
    """Per user: workflow actions and mean time from first_seen to acknowledge."""
    out: dict[str, dict[str, Any]] = {}
    acks: dict[str, list[float]] = defaultdict(list)
    actions: Counter[str] = Counter()
    for rec in records:
        actions[rec.actor] += 1
        if rec.action == "ack":
            acks[rec.actor].append((rec.ts - rec.first_seen).total_seconds())
    for actor in sorted(actions):
        times = acks.get(actor, [])
        out[actor] = {
            "actions": actions[actor],
            "acks": len(times),
            "mean_ack_s": round(sum(times) / len(times), 3) if times else None,
        }
    return out


def compute(
    now: datetime,
    window_s: float,
    alarms: Sequence[AlarmRecord],
    standing: Sequence[dict[str, Any]],
    perimeter_zones: Sequence[str],
    walk_tests: Sequence[WalkTestRecord],
    walk_test_hits: dict[str, list[datetime]],
    actions: Sequence[AckRecord],
) -> dict[str, Any]:
    start = now - timedelta(seconds=window_s)
    alarms = [a for a in alarms if start <= a.first_seen <= now]
    # fixed 10-minute periods on the clock (…:00, …:10, …), as an operator counts them
    step = BUCKET.total_seconds()
    first = datetime.fromtimestamp(math.floor(start.timestamp() / step) * step, start.tzinfo)
    n = max(1, math.ceil((now - first).total_seconds() / step))
    counts = _buckets(alarms, first, n)
    floods = [
        {"start": (first + i * BUCKET).isoformat(), "alarms": c} for i, c in enumerate(counts) if c > FLOOD_ALARMS
    ]
    zone_alarms: dict[str, list[AlarmRecord]] = defaultdict(list)
    for alarm in alarms:
        if alarm.zone is not None:
            zone_alarms[alarm.zone].append(alarm)
    zone_tests: dict[str, list[WalkTestRecord]] = defaultdict(list)
    for test in walk_tests:
        zone_tests[test.zone].append(test)
    return {
        "window": {"from": start.isoformat(), "to": now.isoformat(), "seconds": window_s, "buckets": n},
        "site": rate(counts, n),
        "per_area": _per(alarms, "area", first, n),
        "per_grid": _per(alarms, "grid", first, n),
        "per_zone": _per(alarms, "zone", first, n),
        "floods": {"count": len(floods), "percent_of_time": round(100 * len(floods) / n, 2), "windows": floods},
        "chattering": chattering(alarms),
        "standing": {"count": len(standing), "alerts": list(standing)},
        "perimeter": {
            zone: perimeter_zone(
                zone, zone_alarms.get(zone, []), zone_tests.get(zone, []), walk_test_hits.get(zone, [])
            )
            for zone in perimeter_zones
        },
        "operators": operators(actions),
    }
