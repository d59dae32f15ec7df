"""InfluxDB line protocol from `TsPoint`s, fast: the same text influxdb-client's `Point` writes.

`Point.to_line_protocol()` costs ~50 µs a point and a plain loop over the fields ~3 µs; a writer
of 300,000 points/s has ~3 µs for everything, HTTP included. What repeats is memoised: the head of
a line (measurement and sorted, escaped tags) per distinct (measurement, tags), since telemetry
repeats the same few thousand tag sets, and per field-key set a `_Shape` (sorted, escaped keys and
a `%` template of the rest of the line). What is left per point is its values and timestamp, done
in C where the values are floats (see `LineFormatter`). Telemetry is formatted straight from the
parsed uplink body (`LineFormatter.telemetry_lines`), not from a `TsPoint` per point.

The text is influxdb-client's byte for byte (tests/tsdb check it on generated points) except where
influxdb-client writes something a server reads back differently from what was sent:
- a backslash in a measurement, tag key, tag value or field key is escaped (`\\\\`), which InfluxDB
  and VictoriaMetrics both read back as one backslash (influxdb-client leaves it bare, so a value
  `a\\,b` ends the tag early);
- a newline in those names becomes an escaped space (line protocol has no escape for a newline)
  and one in a string field value is written as `\\n`; tabs and carriage returns are left as they are.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from itertools import chain, repeat
from operator import attrgetter, floordiv, itemgetter, mul, sub
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from gridwatch.contract import TelemetryPoint

    from .points import FieldValue, TsPoint

__all__ = ["LineFormatter", "escape_key", "escape_measurement", "ts_ns"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NS_PER_DAY = 86_400_000_000_000
_MICROSECOND = timedelta(microseconds=1)
_float_repr = float.__repr__  # a float subclass (numpy.float64) is written as its plain value, as `field_text` does
_get_fields, _get_tags, _get_m, _get_ts = (attrgetter(name) for name in ("fields", "tags", "m", "ts"))
RUN_MIN = 8
"""Bodies of fewer points are formatted point by point (the column path's set-up costs more than it saves)."""
CACHE_MAX = 65_536
"""Memoised heads and field shapes per formatter; a full cache is emptied (distinct tag sets are few)."""


def escape_key(text: str) -> str:
    """Tag keys, tag values and field keys: escape backslash, comma, equals, space; a newline becomes a space."""
    return (
        text.replace("\\", "\\\\")
        .replace(",", "\\,")
        .replace("=", "\\=")
        .replace(" ", "\\ ")
        .replace("\n", "\\ ")  # line protocol has no escape for a newline: make it a space
    )


def escape_measurement(text: str) -> str:
    """A measurement name: escape backslash, comma and space; a newline becomes a space (`=` needs none)."""
    return text.replace("\\", "\\\\").replace(",", "\\,").replace(" ", "\\ ").replace("\n", "\\ ")


def _string_field(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _float_field(value: float) -> str | None:
    if not math.isfinite(value):
        return None  # NaN/inf are not valid line protocol: the field is left out
    text = repr(value)
    return text[:-2] if text.endswith(".0") else text  # as influxdb-client: 2.0 is written `2`


def field_text(value: FieldValue | None) -> str | None:
    """A field value in line protocol, or None for a value line protocol cannot carry (None, NaN, ±inf)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{int(value)}i"
    if isinstance(value, float):
        return _float_field(float(value))  # a subclass (numpy.float64) would repr as itself
    if isinstance(value, str):
        return _string_field(str(value))
    raise TypeError(f"field value {value!r} is a {type(value).__name__}: line protocol takes float, int, bool, str")


def ts_ns(ts: datetime) -> int:
    """Exact integer nanoseconds since the epoch (no float rounding); a naive time is taken as UTC."""
    delta = (ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)) - _EPOCH
    return delta.days * _NS_PER_DAY + delta.seconds * 1_000_000_000 + delta.microseconds * 1000


class _Shape(NamedTuple):
    """What is memoised per field-key set (in the order the point's dict holds them)."""

    order: tuple[tuple[str, str], ...]
    """The keys sorted (as influxdb-client writes them), each with its escaped `key=` prefix."""
    get: Callable[[Mapping[str, Any]], Any]
    """`itemgetter` of the sorted keys: their values in one C call (a bare value for a single key)."""
    single: bool
    template: str
    """`k1=%s,k2=%s %d`: the whole line after the head, for the float fast path."""
    n_count: int
    """How many `n` the template's own text holds (NaN and ±inf are the only float reprs with an `n`)."""
    fast: bool
    """Whether to try the fast path: False after a point of this shape held a value that is not a float."""


def _new_shape(key: tuple[str, ...]) -> _Shape:
    order = tuple((k, escape_key(k) + "=") for k in sorted(key))
    template = ",".join(prefix.replace("%", "%%") + "%s" for _, prefix in order) + " %d"
    single = len(order) == 1
    get: Callable[[Mapping[str, Any]], Any] = itemgetter(*(k for k, _ in order)) if order else _no_values
    # no fields: no line, which the checked path says (None)
    return _Shape(order, get, single, template, template.count("n"), fast=bool(order))


def _no_values(fields: Mapping[str, Any]) -> tuple[()]:
    return ()


def _checked_fields(order: tuple[tuple[str, str], ...], fields: Mapping[str, Any]) -> tuple[str | None, bool]:
    """(`k=v,…` with values line protocol cannot carry left out, or None if none is left; all values floats?).

    The reference path: each value by its type, exact types first (what the contract models hold),
    subclasses through `field_text`. TypeError for a value of a type line protocol has no form for.
    """
    parts = []
    floats_only = True
    for name, prefix in order:
        value = fields[name]
        kind = type(value)
        if kind is float:
            if value - value != 0:  # NaN or ±inf: not valid line protocol, the field is left out
                continue
            text = repr(value)
            if text.endswith(".0"):  # as influxdb-client: 2.0 is written `2`
                text = text[:-2]
        else:
            floats_only = False
            if kind is int:
                text = f"{value}i"
            elif kind is str:
                text = _string_field(value)
            else:
                general = field_text(value)
                if general is None:
                    continue
                text = general
        parts.append(prefix + text)
    return (",".join(parts) if parts else None), floats_only


class LineFormatter:
    """Formats points as line protocol (ns precision), memoising what repeats between points.

    Per distinct (measurement, tags) the head of the line is memoised, per distinct field-key set
    a `_Shape`. A point whose fields are all finite floats (positions, GPS: most of telemetry) is
    then written by the fast path: its values fetched by one `itemgetter` call, `float.__repr__`
    mapped over them and the line made by one `%` on the shape's template, in C; influxdb-client's
    `2.0` → `2` is one `replace` of `.0,` and `.0 ` on that text (escaped keys hold neither: their
    commas and spaces are escaped, and a key is followed by `=`). A NaN or ±inf (their reprs are
    the only ones with an `n`: the count of `n` in the text gives them away), another value type,
    or a naive time sends the point through `_checked_fields`, whose output the fast path equals
    (tests/tsdb/test_lineproto.py proves both against influxdb-client's `Point`).
    """

    def __init__(self, cache_max: int = CACHE_MAX) -> None:
        self.cache_max = cache_max
        self._heads: dict[tuple[str, ...], str] = {}
        self._site_heads: dict[tuple[str, ...], str] = {}
        self._shapes: dict[tuple[str, ...], _Shape] = {}

    def _new_head(
        self, cache: dict[tuple[str, ...], str], key: tuple[str, ...], measurement: str, tags: Mapping[str, str]
    ) -> str:
        """`measurement,k=v,… ` with tags sorted by key; empty keys and values are left out (as influxdb-client)."""
        parts = [escape_measurement(measurement)]
        parts += [f",{escape_key(k)}={escape_key(v)}" for k, v in sorted(tags.items()) if k and v]
        head = "".join(parts) + " "
        if len(cache) >= self.cache_max:
            cache.clear()
        cache[key] = head
        return head

    def _shape(self, key: tuple[str, ...]) -> _Shape:
        shape = _new_shape(key)
        if len(self._shapes) >= self.cache_max:
            self._shapes.clear()
        self._shapes[key] = shape
        return shape

    def _checked(self, key: tuple[str, ...], shape: _Shape, fields: Mapping[str, Any], ts: datetime) -> str | None:
        """The line after the head by the reference path; turns the shape's fast path off or back on."""
        text, floats_only = _checked_fields(shape.order, fields)
        if shape.fast != (floats_only and bool(shape.order)) and self._shapes.get(key) is shape:
            self._shapes[key] = shape._replace(fast=not shape.fast)
        return None if text is None else f"{text} {ts_ns(ts)}"

    def _rest(self, shapes: dict[tuple[str, ...], _Shape], fields: Mapping[str, Any], ts: datetime) -> str | None:
        """The line after its head (`k=v,… ns`), or None if no field can be carried.

        The fast path (see the class doc) where the shape allows and the values are finite floats,
        else `_checked`, whose output the fast path equals.
        """
        key = tuple(fields)
        shape = shapes.get(key) or self._shape(key)
        _, get, single, template, n_count, fast = shape  # one unpacking, not five attribute look-ups
        if fast:
            try:
                values = get(fields)
                text = template % (
                    *map(_float_repr, (values,) if single else values),
                    (ts - _EPOCH) // _MICROSECOND * 1000,
                )
            except TypeError:  # a value that is not a float, or a naive time
                pass
            else:
                if text.count("n") == n_count:
                    return text.replace(".0,", ",").replace(".0 ", " ")
        return self._checked(key, shape, fields, ts)

    def line(self, p: TsPoint) -> str | None:
        """One line, or None if the point has no field line protocol can carry."""
        lines = self.lines((p,))
        return lines[0] if lines else None

    def lines(self, points: Iterable[TsPoint], out: list[str] | None = None) -> list[str]:
        """The lines of `points` (appended to `out` if given), leaving out points without a valid field.

        TypeError for a field of a type line protocol has no form for. The caches are in locals and
        the fast path inline: per point this is most of central's time-series CPU.
        """
        out = [] if out is None else out
        append, heads, shapes = out.append, self._heads, self._shapes
        for measurement, tags, fields, ts in points:
            # keys then values: unambiguous (the length fixes where the values start), no item tuples
            head = heads.get((measurement, *tags, *tags.values()))
            if head is None:
                head = self._new_head(heads, (measurement, *tags, *tags.values()), measurement, tags)
            rest = self._rest(shapes, fields, ts)
            if rest is not None:
                append(head + rest)
        return out

    def telemetry_lines(self, site: str, entries: Sequence[TelemetryPoint], out: list[str] | None = None) -> list[str]:
        """The lines of a telemetry body's points with tag `site` added: `lines` of `points_from_telemetry`.

        Straight from the parsed body, without a `TsPoint` and a merged tags dict per point. A body
        of one kind of point (the usual: an edge batches positions) goes through `_run_lines`,
        others, and bodies that path declines, point by point.
        """
        out = [] if out is None else out
        if len(entries) < RUN_MIN or not self._run_lines(site, entries, out):
            self._telemetry_point_lines(site, entries, out)
        return out

    def _run_lines(self, site: str, entries: Sequence[TelemetryPoint], out: list[str]) -> bool:
        """Append the lines of a run of points alike in measurement, tag keys and field keys, all finite floats.

        Column by column with C-level `map`s instead of a bytecode loop per point (a quarter less
        CPU): the float reprs of the whole run are joined by commas (no float repr has one) for a
        single `n` check (NaN, ±inf) and a single `.0,` → `,` replace, then split into columns and
        zipped with the heads and timestamps into one `%` per line. False, having appended
        nothing, for a run that is not such a run; the point-by-point path then writes it.
        """
        n = len(entries)
        fields_list = list(map(_get_fields, entries))
        key = tuple(fields_list[0])
        if list(map(tuple, fields_list)).count(key) != n:
            return False
        shape = self._shapes.get(key) or self._shape(key)
        order, get, single, template, _, fast = shape
        measurement = entries[0].m
        tags_list = list(map(_get_tags, entries))
        tag_keys = tuple(tags_list[0])
        if not fast or list(map(_get_m, entries)).count(measurement) != n:
            return False
        if list(map(tuple, tags_list)).count(tag_keys) != n:
            return False
        try:
            values = map(get, fields_list) if single else chain.from_iterable(map(get, fields_list))
            texts = ",".join(map(_float_repr, values))
            micros = list(map(floordiv, map(sub, map(_get_ts, entries), repeat(_EPOCH)), repeat(_MICROSECOND)))
            tag_values = list(map(tuple, map(dict.values, tags_list)))
        except TypeError:  # a value that is not a float, a naive time, tags that are not a dict
            return False
        if "n" in texts:  # NaN or ±inf somewhere: those fields are left out, point by point
            return False
        texts_list = (texts + ",").replace(".0,", ",").split(",")  # influxdb-client writes 2.0 as `2`
        k = len(order)
        columns = [texts_list[i:-1:k] for i in range(k)]  # the list ends with the "" after the last comma
        heads = self._site_heads
        prefix = (site, measurement, *tag_keys)
        head_keys = list(map(prefix.__add__, tag_values))
        found = list(map(heads.get, head_keys))
        if None in found:
            for i, head in enumerate(found):
                if head is None:
                    found[i] = self._new_head(heads, head_keys[i], measurement, {**tags_list[i], "site": site})
        nanos = map(mul, micros, repeat(1000))
        out.extend(map(("%s" + template).__mod__, zip(found, *columns, nanos, strict=True)))
        return True

    def _telemetry_point_lines(self, site: str, entries: Iterable[TelemetryPoint], out: list[str]) -> None:
        """`telemetry_lines` point by point; the head is memoised per (site, measurement, tags)."""
        append, heads, shapes = out.append, self._site_heads, self._shapes
        for p in entries:
            tags, fields, measurement = p.tags, p.fields, p.m
            head = heads.get((site, measurement, *tags, *tags.values()))
            if head is None:
                key = (site, measurement, *tags, *tags.values())
                head = self._new_head(heads, key, measurement, {**tags, "site": site})
            rest = self._rest(shapes, fields, p.ts)
            if rest is not None:
                append(head + rest)
