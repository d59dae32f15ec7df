"""The alert list reads plain rows (and, on SQLite, date-times as stored text): same items as the detail."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.dialects import sqlite

from central.domain.views import sqlite_ts, ts
from central.service import CentralService
from gridwatch.clock import FakeClock

from .conftest import OPERATOR, transition

_STORE = sqlite.DATETIME().bind_processor(sqlite.dialect())
assert _STORE is not None


@settings(max_examples=500, deadline=None)
@given(
    st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59, 999999)),
    st.booleans(),
)
def test_stored_sqlite_text_becomes_the_same_rfc3339_as_the_datetime(value: datetime, whole_second: bool) -> None:
    if whole_second:
        value = value.replace(microsecond=0)  # `isoformat` leaves zero microseconds out
    assert sqlite_ts(_STORE(value)) == ts(value.replace(tzinfo=UTC))


def test_sqlite_text_of_another_shape_is_parsed() -> None:
    assert sqlite_ts(None) is None
    assert sqlite_ts("2026-11-23 06:00:00") == "2026-11-23T06:00:00+00:00"
    assert sqlite_ts("2026-11-23T08:00:00.5+02:00") == "2026-11-23T06:00:00.500000+00:00"


def test_listed_items_are_the_detail_items_and_pages_join_up(service: CentralService, clock: FakeClock) -> None:
    """On both databases: every listed item equals the alert's own item (date-times included), and the
    cursor continues exactly where the page ended, also across equal `last_change` times."""
    base = clock.now().replace(microsecond=0)
    stamps = [base, base + timedelta(microseconds=1), base + timedelta(seconds=1, microseconds=250_000)]
    for i in range(7):
        at = stamps[i % 3].astimezone(timezone(timedelta(hours=8)))  # any zone in, UTC out
        service.ingest_alert("edge-a", transition(clock, f"a{i}", ts=at, first_seen=at - timedelta(seconds=i)))
    service.shelve("a3", OPERATOR, base + timedelta(hours=1, microseconds=7), "windy")
    seen = []
    cursor = None
    while True:
        items, cursor = service.list_alerts(limit=2, cursor=cursor)
        seen += items
        if cursor is None:
            break
    assert sorted(i["id"] for i in seen) == [f"a{i}" for i in range(7)]
    assert [(i["last_change"], i["id"]) for i in seen] == sorted(
        ((i["last_change"], i["id"]) for i in seen), reverse=True
    )
    for item in seen:
        detail = service.get_alert(item["id"])
        assert item == {k: detail[k] for k in item}
    assert next(i for i in seen if i["id"] == "a3")["shelved_until"] == ts(base + timedelta(hours=1, microseconds=7))
