"""Our line protocol is influxdb-client's `Point.to_line_protocol()`, byte for byte, and survives bad input."""

from __future__ import annotations

import asyncio
import math
import warnings
from collections.abc import Sequence
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

from central.tsdb import TelemetryPoints, TsPoint, open_store, points_from_telemetry
from central.tsdb.lineproto import (
    LineFormatter,
    _checked_fields,
    escape_key,
    escape_measurement,
    field_text,
    ts_ns,
)
from central.tsdb.points import Batch, QueuedWriter, batch_points
from gridwatch.contract import TelemetryBody, TelemetryPoint, new_event_id

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


T = datetime(2026, 1, 1, tzinfo=UTC)
# keys that could fool the fast path: `%` in its template, `n` in its NaN count, `.0` before `=`
TRICKY_KEY = st.one_of(
    NAME_WITH_SPECIALS, st.sampled_from(["n", "nan", "inf", "x.0", "a.0 b", "a.0,b", "%s", "%d", "lon"])
)
FLOATS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-(2**60), 2**60).map(float),  # integral: influxdb-client writes 2.0 as `2`
    st.sampled_from([0.0, -0.0, 1e16, 1e-5, 1e22, 5e-324, 0.1]),
)
FLOAT_POINTS = st.builds(
    TsPoint,
    measurement=NAME_WITH_SPECIALS.filter(bool),
    tags=st.dictionaries(NAME_WITH_SPECIALS, NAME_WITH_SPECIALS, max_size=3),
    fields=st.dictionaries(TRICKY_KEY, FLOATS, max_size=4),
    ts=TIMES,
)


def checked_line(p: TsPoint) -> str | None:
    """The reference path alone: every value through `_checked_fields`, the head written out in full."""
    head = escape_measurement(p.measurement)
    head += "".join(f",{escape_key(k)}={escape_key(v)}" for k, v in sorted(p.tags.items()) if k and v)
    text, _ = _checked_fields(tuple((k, escape_key(k) + "=") for k in sorted(p.fields)), p.fields)
    return None if text is None else f"{head} {text} {ts_ns(p.ts)}"


@settings(max_examples=1500, deadline=None)
@given(st.lists(FLOAT_POINTS, max_size=12))
def test_the_float_fast_path_writes_what_the_checked_path_and_influxdb_client_write(points: list[TsPoint]) -> None:
    got = LineFormatter().lines(points)
    assert got == [line for line in map(checked_line, points) if line is not None]
    assert got == [line for line in map(influx_line, points) if line is not None]


@settings(max_examples=500, deadline=None)
@given(
    st.lists(FLOAT_POINTS.map(lambda p: p._replace(fields={k: np.float64(v) for k, v in p.fields.items()})), max_size=8)
)
def test_float_subclasses_take_the_fast_path_as_their_plain_value(points: list[TsPoint]) -> None:
    assert LineFormatter().lines(points) == [line for line in map(checked_line, points) if line is not None]


def test_points_of_finite_floats_at_aware_times_never_reach_the_checked_path() -> None:
    """The fast path is what formats them (else the tests above would prove nothing about it)."""
    points = [
        TsPoint("position", {"tag": f"T-{i % 3}"}, {"x": i * 0.01, "y": 2.0, "nan": -1.5}, T + timedelta(seconds=i))
        for i in range(50)
    ]
    formatter = LineFormatter()
    with patch.object(LineFormatter, "_checked", side_effect=AssertionError("checked path taken")):
        lines = formatter.lines(points)
    assert lines == [checked_line(p) for p in points]
    assert lines[0] == "position,tag=T-0 nan=-1.5,x=0,y=2 1767225600000000000"


MIXED_VALUE = st.one_of(FIELD_VALUE, FLOATS, FLOATS.map(np.float64), st.none())


@settings(max_examples=500, deadline=None)
@given(
    st.lists(
        st.builds(
            TsPoint,
            measurement=st.just("m"),
            tags=st.just({"t": "a"}),
            fields=st.dictionaries(st.sampled_from(["a", "b", "n"]), MIXED_VALUE, max_size=3),
            ts=TIMES,
        ),
        max_size=30,
    )
)
def test_a_shape_switching_between_fast_and_checked_path_gives_every_point_its_own_line(points: list[TsPoint]) -> None:
    """Few key sets, values of every type in turn: the fast path is turned off and on again per shape."""
    shared = LineFormatter()
    assert shared.lines(points) == [line for line in map(checked_line, points) if line is not None]
    assert shared.lines(points) == [line for line in map(checked_line, points) if line is not None]


ENTRIES = st.builds(
    TelemetryPoint.model_construct,  # unvalidated: names and values the contract would refuse, too
    m=NAME_WITH_SPECIALS.filter(bool),
    tags=st.dictionaries(st.one_of(NAME_WITH_SPECIALS, st.just("site")), NAME_WITH_SPECIALS, max_size=4),
    fields=st.one_of(
        st.dictionaries(NAME_WITH_SPECIALS, FIELD_VALUE, max_size=4), st.dictionaries(TRICKY_KEY, FLOATS, max_size=4)
    ),
    ts=TIMES,
)


@settings(max_examples=1000, deadline=None)
@given(NAME_WITH_SPECIALS, st.lists(ENTRIES, max_size=12))
def test_telemetry_lines_are_the_lines_of_points_from_telemetry(site: str, entries: list[TelemetryPoint]) -> None:
    """Formatted straight from the body, with `site` merged into the tags, as influxdb-client writes them."""
    points = [TsPoint(e.m, {**e.tags, "site": site}, e.fields, e.ts) for e in entries]
    formatter = LineFormatter(cache_max=4)  # small: heads and shapes get evicted and made again
    expected = [line for line in map(influx_line, points) if line is not None]
    assert formatter.telemetry_lines(site, entries) == expected
    assert formatter.telemetry_lines(site, entries) == expected
    assert formatter.lines(points) == expected


@st.composite
def runs(draw: st.DrawFn) -> list[TelemetryPoint]:
    """Bodies of one kind of point (what the column path takes), now and then with a value or point that is not."""
    m = draw(NAME_WITH_SPECIALS.filter(bool))
    tag_keys = draw(st.lists(st.one_of(NAME_WITH_SPECIALS, st.just("site")), unique=True, max_size=3))
    field_keys = draw(st.lists(TRICKY_KEY, unique=True, max_size=3))
    finite = FLOATS.filter(math.isfinite)  # no NaN anywhere in the body: the column path writes it all
    values: st.SearchStrategy[Any] = draw(
        st.sampled_from([finite, finite, finite.map(np.float64), FLOATS, MIXED_VALUE])
    )
    tag_values = st.one_of(st.sampled_from(["a", "b", "1.0", "2.0 ", ""]), NAME_WITH_SPECIALS)
    aware = TIMES.filter(lambda t: t.tzinfo is not None)
    times = draw(st.sampled_from([aware, aware, TIMES]))
    entries = [
        TelemetryPoint.model_construct(
            m=m,  # type: ignore[arg-type]  # unvalidated on purpose: any measurement name
            tags={k: draw(tag_values) for k in tag_keys},
            fields={k: draw(values) for k in field_keys},
            ts=draw(times),
        )
        for _ in range(draw(st.integers(0, 24)))
    ]
    add_odd_one: bool = draw(st.booleans())
    if entries and add_odd_one:  # one point unlike the others, somewhere
        like = entries[0]
        odd = draw(
            st.sampled_from(
                [
                    like.model_copy(update={"tags": dict(reversed(like.tags.items()))}),  # the same tags, reordered
                    like.model_copy(update={"tags": {f"{k}_": v for k, v in like.tags.items()}}),  # other tag keys
                    like.model_copy(update={"m": like.m + "_"}),
                    like.model_copy(update={"fields": {**like.fields, "extra": 1.5}}),
                    like.model_copy(update={"fields": dict(reversed(like.fields.items()))}),
                    draw(ENTRIES),
                ]
            )
        )
        entries.insert(draw(st.integers(0, len(entries))), odd)
    return entries


@settings(max_examples=1000, deadline=None)
@given(NAME_WITH_SPECIALS, runs())
def test_the_column_path_writes_what_the_point_path_and_influxdb_client_write(
    site: str, entries: list[TelemetryPoint]
) -> None:
    points = [TsPoint(e.m, {**e.tags, "site": site}, e.fields, e.ts) for e in entries]
    expected = [line for line in map(influx_line, points) if line is not None]
    point_by_point: list[str] = []
    LineFormatter()._telemetry_point_lines(site, entries, point_by_point)
    assert point_by_point == expected
    for formatter in (LineFormatter(), LineFormatter(cache_max=3)):  # the second one keeps evicting
        assert formatter.telemetry_lines(site, entries) == expected
        assert formatter.telemetry_lines(site, entries) == expected  # every head and shape from the cache


def test_a_body_of_positions_takes_the_column_path() -> None:
    """The column path is what formats such a body (else the test above would prove nothing about it)."""
    entries = [
        TelemetryPoint(
            m="position",
            tags={"tag": f"T-{i % 7}", "person": f"P {i % 7}"},
            fields={"x": i * 0.01, "y": 2.0, "q": 0.9},
            ts=T + timedelta(microseconds=i),
        )
        for i in range(40)
    ]
    expected: list[str] = []
    LineFormatter()._telemetry_point_lines("s1", entries, expected)
    with patch.object(LineFormatter, "_telemetry_point_lines", side_effect=AssertionError("point path taken")):
        assert LineFormatter().telemetry_lines("s1", entries) == expected
    assert expected[1] == "position,person=P\\ 1,site=s1,tag=T-1 q=0.9,x=0.01,y=2 1767225600000001000"


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

    def __init__(self, fail_sends: set[int], fail_prepares: set[int], batch_max: int = 10) -> None:
        super().__init__(batch_max=batch_max)
        self.fail_sends, self.fail_prepares = fail_sends, fail_prepares
        self.sends = self.prepares = 0
        self.sent: list[str] = []
        self.batch_sizes: list[int] = []

    def _prepare(self, batch: Batch) -> tuple[list[str], list[TsPoint] | None]:
        self.prepares += 1
        if self.prepares in self.fail_prepares:
            raise RuntimeError("prepare failed")
        return [p.tags["i"] for p in batch_points(batch)], None

    def _send(self, payload: list[str]) -> None:
        self.sends += 1
        if self.sends in self.fail_sends:
            raise ConnectionError("server went away")
        self.sent += payload
        self.batch_sizes.append(len(payload))


def telemetry_run(site: str, first: int, n: int) -> TelemetryPoints:
    """`n` telemetry points of one body, tag `i` numbering them from `first`."""
    entries = [
        TelemetryPoint(m="position", tags={"i": f"{i:03d}"}, fields={"x": 1.0}, ts=datetime(2026, 1, 1, tzinfo=UTC))
        for i in range(first, first + n)
    ]
    return points_from_telemetry(site, TelemetryBody(event_id=new_event_id(), batch=tuple(entries)))


@settings(max_examples=40, deadline=None)
@given(
    runs=st.lists(st.tuples(st.booleans(), st.integers(1, 23)), min_size=1, max_size=8),
    fail_sends=st.sets(st.integers(1, 12), max_size=4),
    fail_prepares=st.sets(st.integers(1, 12), max_size=3),
)
def test_pipelined_writes_send_every_point_once_in_order_through_failures(
    runs: list[tuple[bool, int]], fail_sends: set[int], fail_prepares: set[int]
) -> None:
    """Batch k+1 is prepared while k is sent; whichever step fails, both go back in order and nothing is lost.

    The writes are telemetry bodies (kept whole in the queue, split at batch boundaries) and lists.
    """
    writer = FlakyWriter(fail_sends, fail_prepares)
    writes: list[Sequence[TsPoint]] = []
    n = 0
    for is_telemetry, size in runs:
        if is_telemetry:
            writes.append(telemetry_run("s", n, size))
        else:
            writes.append(
                [
                    TsPoint("m", {"i": f"{i:03d}"}, {"x": 1.0}, datetime(2026, 1, 1, tzinfo=UTC))
                    for i in range(n, n + size)
                ]
            )
        n += size

    async def main() -> None:
        for points in writes:
            await writer.write(points)
        assert writer.stats["queued"] == n
        assert await writer.flush(timeout=60)

    with patch("central.tsdb.points.RETRY_START_S", 0.001):
        asyncio.run(main())
    assert writer.sent == [f"{i:03d}" for i in range(n)]
    assert writer.stats["written"] == n and writer.stats["queued"] == 0 and writer.stats["dropped"] == 0
    assert max(writer.batch_sizes) <= 10


def test_a_full_queue_keeps_the_head_of_a_telemetry_body_and_counts_the_rest() -> None:
    writer = FlakyWriter(set(), set(), batch_max=4)
    writer.queue_max = 7

    async def main() -> None:
        await writer.write(telemetry_run("s", 0, 5))
        await writer.write(telemetry_run("s", 5, 5))  # room for 2 of these
        await writer.write([TsPoint("m", {"i": "x"}, {"x": 1.0}, datetime(2026, 1, 1, tzinfo=UTC))])
        assert writer.stats == {"written": 0, "dropped": 4, "errors": 0, "queued": 7}
        assert await writer.flush(timeout=10)

    asyncio.run(main())
    assert writer.sent == [f"{i:03d}" for i in range(7)]
    assert writer.batch_sizes == [4, 3]


def test_telemetry_points_are_the_points_of_the_body_with_the_site_tag() -> None:
    body = TelemetryBody.model_validate(
        {
            "event_id": new_event_id(),
            "batch": [
                {"m": "position", "tags": {"tag": f"T-{i}", "site": "edge-says"}, "fields": {"x": float(i)}, "ts": T}
                for i in range(5)
            ],
        }
    )
    expected = [TsPoint(p.m, {**p.tags, "site": "s1"}, p.fields, p.ts) for p in body.batch]
    pts = points_from_telemetry("s1", body)
    assert len(pts) == 5 and list(pts) == expected and pts[-1] == expected[-1]
    assert list(pts[1:4]) == expected[1:4] and list(pts[3:][:1]) == expected[3:4]
    assert isinstance(pts[1:4], TelemetryPoints) and len(pts[5:]) == 0
