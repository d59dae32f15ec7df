"""Our line protocol is influxdb-client's `Point.to_line_protocol()`, byte for byte, and survives bad input."""

from __future__ import annotations

import asyncio
import warnings
from datetime import UTC, datetime, timedelta, timezone
from enum import IntEnum, StrEnum
from pathlib import Path
from typing import Any
from unittest.mock import patch

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from influxdb_client import Point
from influxdb_client.domain.write_precision import WritePrecision

from central.tsdb import TsPoint, open_store
from central.tsdb.lineproto import LineFormatter, escape_key, field_text, ts_ns
from central.tsdb.points import QueuedWriter

# influxdb-client leaves a backslash in a name bare (so `a\,b` ends a tag early) and writes control
# characters as `\n`, `\t`, `\r`, which servers read back as two characters: those are the
# documented differences, so the comparison draws names without them.
SAFE_NAME = st.text(st.characters(blacklist_characters="\\\n\r\t", blacklist_categories=("Cs",)), max_size=12)
NAME_WITH_SPECIALS = st.one_of(SAFE_NAME, st.sampled_from(["a b", "a,b", "a=b", " ", ",", "=", "x y=z,w", "#c"]))
FIELD_STRING = st.text(st.characters(blacklist_characters="\n", blacklist_categories=("Cs",)), max_size=20)
FIELD_VALUE = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.booleans(),
    FIELD_STRING,
)
TIMES = st.datetimes(
    min_value=datetime(1970, 1, 2), max_value=datetime(2200, 1, 1), timezones=st.sampled_from([UTC, None])
) | st.datetimes(
    min_value=datetime(1970, 1, 2),
    max_value=datetime(2200, 1, 1),
    timezones=st.just(timezone(timedelta(hours=8))),
)
POINTS = st.builds(
    TsPoint,
    measurement=NAME_WITH_SPECIALS.filter(bool),
    tags=st.dictionaries(NAME_WITH_SPECIALS, NAME_WITH_SPECIALS, max_size=5),
    fields=st.dictionaries(NAME_WITH_SPECIALS, FIELD_VALUE, max_size=5),
    ts=TIMES,
)


def influx_line(p: TsPoint) -> str | None:
    point = Point(p.measurement).time(p.ts, WritePrecision.NS)
    for key, value in p.tags.items():
        point.tag(key, value)
    for key, value in p.fields.items():
        point.field(key, value)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SyntaxWarning)  # a measurement starting with '#'
        return point.to_line_protocol() or None


@settings(max_examples=1500, deadline=None)
@given(POINTS)
def test_a_line_is_influxdb_clients_line(p: TsPoint) -> None:
    assert LineFormatter().line(p) == influx_line(p)


@settings(max_examples=300, deadline=None)
@given(st.lists(POINTS, max_size=30))
def test_memoised_heads_and_field_orders_give_the_same_lines_as_fresh_ones(points: list[TsPoint]) -> None:
    """A formatter reused across points (and one whose caches keep overflowing) answers as a fresh one."""
    shared, tiny = LineFormatter(), LineFormatter(cache_max=2)
    fresh = [LineFormatter().line(p) for p in points]
    expected = [line for line in fresh if line is not None]
    assert shared.lines(points) == expected
    assert shared.lines(points) == expected  # second pass: every head and order from the cache
    assert tiny.lines(points + points) == expected + expected


def test_the_documented_differences_from_influxdb_client_read_back_as_sent() -> None:
    p = TsPoint(
        "m\\x", {"path": "C:\\dir,a", "k\n": "v"}, {"s": "two\nlines", "f\\": 1}, datetime(2026, 1, 1, tzinfo=UTC)
    )
    assert LineFormatter().line(p) == 'm\\\\x,k\\ =v,path=C:\\\\dir\\,a f\\\\=1i,s="two\\nlines" 1767225600000000000'
    assert escape_key("a\\") == "a\\\\"  # a trailing backslash cannot swallow the separator after it


def test_values_of_subclassed_types_are_written_as_their_plain_value() -> None:
    class Code(IntEnum):
        DOOR = 7

    class State(StrEnum):
        ACTIVE = "active"

    p = TsPoint(
        "m", {"t": "a"}, {"c": Code.DOOR, "s": State.ACTIVE, "f": np.float64(2.5), "n": None}, datetime(2026, 1, 1)
    )  # type: ignore[dict-item]
    assert LineFormatter().line(p) == 'm,t=a c=7i,f=2.5,s="active" 1767225600000000000'
    assert field_text(True) == "true" and field_text(float("nan")) is None


def test_a_field_of_an_unknown_type_is_a_clear_type_error() -> None:
    p = TsPoint("m", {}, {"bad": [1, 2]}, datetime(2026, 1, 1, tzinfo=UTC))  # type: ignore[dict-item]
    try:
        LineFormatter().line(p)
    except TypeError as exc:
        assert "list" in str(exc)
    else:
        raise AssertionError("a list field was formatted")


def test_ts_ns_is_exact_to_the_microsecond() -> None:
    ts = datetime(2262, 4, 11, 23, 47, 16, 854775, tzinfo=UTC)
    assert ts_ns(ts) == 9_223_372_036_854_775_000
    assert ts_ns(datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)) == -1000
    assert ts_ns(datetime(2026, 1, 1)) == ts_ns(datetime(2026, 1, 1, tzinfo=UTC))


def test_a_point_that_cannot_be_encoded_is_dropped_and_counted_and_the_rest_written(tmp_path: Path) -> None:
    """One bad point must not hold up (or take down) the batch it came in, in either store."""
    t0 = datetime(2026, 3, 1, tzinfo=UTC)
    good = [TsPoint("position", {"tag": f"T-{i}"}, {"x": float(i)}, t0 + timedelta(seconds=i)) for i in range(10)]
    bad: Any = TsPoint("position", {"tag": "T-bad"}, {"x": object()}, t0)

    async def main() -> None:
        store = open_store(f"sqlite:///{tmp_path}/ts.db?retention_days=36500")
        await store.start()
        await store.write([*good[:5], bad, *good[5:]])
        await store.close()
        assert store.stats == {"written": 10, "dropped": 1, "errors": 0, "queued": 0}
        reopened = open_store(f"sqlite:///{tmp_path}/ts.db?retention_days=36500")
        rows = await reopened.query("position", None, t0, t0 + timedelta(minutes=1))
        await reopened.close()
        assert [r["tags"]["tag"] for r in rows] == [f"T-{i}" for i in range(10)]

    asyncio.run(main())


def test_a_bad_point_is_dropped_and_counted_by_the_influx_store_too(victoria_metrics: str) -> None:
    t0 = datetime(2026, 3, 2, tzinfo=UTC)
    good = [
        TsPoint("bad_point_probe", {"tag": f"T-{i}"}, {"x": float(i)}, t0 + timedelta(seconds=i)) for i in range(10)
    ]
    bad: Any = TsPoint("bad_point_probe", {"tag": "T-bad"}, {"x": object()}, t0)

    async def main() -> None:
        store = open_store(victoria_metrics)
        await store.start()
        await store.write([*good[:5], bad, *good[5:]])
        await store.close()
        assert store.stats == {"written": 10, "dropped": 1, "errors": 0, "queued": 0}

    asyncio.run(main())


class FlakyWriter(QueuedWriter[list[str]]):
    """Records what it sends; the sends and prepares numbered in `fail_sends`/`fail_prepares` raise."""

    def __init__(self, fail_sends: set[int], fail_prepares: set[int]) -> None:
        super().__init__(batch_max=10)
        self.fail_sends, self.fail_prepares = fail_sends, fail_prepares
        self.sends = self.prepares = 0
        self.sent: list[str] = []

    def _prepare(self, batch: list[TsPoint]) -> tuple[list[str], list[TsPoint]]:
        self.prepares += 1
        if self.prepares in self.fail_prepares:
            raise RuntimeError("prepare failed")
        return [p.tags["i"] for p in batch], []

    def _send(self, payload: list[str]) -> None:
        self.sends += 1
        if self.sends in self.fail_sends:
            raise ConnectionError("server went away")
        self.sent += payload


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 95),
    fail_sends=st.sets(st.integers(1, 12), max_size=4),
    fail_prepares=st.sets(st.integers(1, 12), max_size=3),
)
def test_pipelined_writes_send_every_point_once_in_order_through_failures(
    n: int, fail_sends: set[int], fail_prepares: set[int]
) -> None:
    """Batch k+1 is prepared while k is sent; whichever step fails, both go back in order and nothing is lost."""
    writer = FlakyWriter(fail_sends, fail_prepares)
    points = [TsPoint("m", {"i": f"{i:03d}"}, {"x": 1.0}, datetime(2026, 1, 1, tzinfo=UTC)) for i in range(n)]

    async def main() -> None:
        await writer.write(points)
        assert await writer.flush(timeout=60)

    with patch("central.tsdb.points.RETRY_START_S", 0.001):
        asyncio.run(main())
    assert writer.sent == [f"{i:03d}" for i in range(n)]
    assert writer.stats["written"] == n and writer.stats["queued"] == 0 and writer.stats["dropped"] == 0
