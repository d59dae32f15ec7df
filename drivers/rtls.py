"""RTLS gateway positions (contract §2.4): a batch, or a single position without the wrapper.

Two paths, one answer. The checked path (`load_object`, then `validate` with RtlsBatchPayload or
RtlsPosition) words every error. A batch that validates on the first try takes the plain path
instead: the text is parsed once, into plain dicts (validated with RtlsPosition's own fields), and
goes straight into columns (`PositionColumns`): no Position object is built for the edge, whose
rules and batcher read the columns (building 100 Positions cost as much as parsing their text).
"""

from __future__ import annotations

from datetime import UTC, datetime
from operator import itemgetter
from typing import Annotated, Any, NotRequired

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError
from typing_extensions import TypedDict

from drivers import DeviceContext, _maybe_non_finite, load_object, resolve_ts, validate
from gridwatch.contract import Family, Position, PositionsReading, Reading, RtlsBatchPayload, RtlsPosition
from gridwatch.contract.readings import PositionColumns, Positions

_FIELDS = frozenset(Position.model_fields)
_new = Position.__new__
_set = object.__setattr__


def _position_unchecked(
    tag: str, ts: datetime, x: float, y: float, z: float, q: float | None, bat: float | None
) -> Position:
    """A Position from values already validated by RtlsPosition (same id pattern, finite bounded
    numbers) and an aware UTC time from resolve_ts: what `Position(...)` builds, without validating
    every field a second time (a third of an RTLS batch's parse time)."""
    pos = _new(Position)
    _set(pos, "__dict__", {"tag": tag, "ts": ts, "x": x, "y": y, "z": z, "q": q, "bat": bat})
    _set(pos, "__pydantic_fields_set__", set(_FIELDS))
    _set(pos, "__pydantic_extra__", None)
    _set(pos, "__pydantic_private__", None)
    return pos


def _position_checked(
    tag: str, ts: datetime, x: float, y: float, z: float, q: float | None, bat: float | None
) -> Position:
    return Position(tag=tag, ts=ts, x=x, y=y, z=z, q=q, bat=bat)


def _field(model: type[BaseModel], name: str, *, required: bool) -> Any:
    """A field of `model` as a TypedDict item: its own type and FieldInfo (bounds, strictness)."""
    info = model.model_fields[name]
    return _item(info.annotation, info, required=required)


def _item(annotation: Any, info: Any, *, required: bool) -> Any:
    item: Any = Annotated[annotation, info]
    return item if required else NotRequired[item]


# The plain path's shapes: RtlsPosition's and RtlsBatchPayload's own fields and config, as
# TypedDicts (validating into dicts costs 40% less than into model instances). Validation fills a
# key that is absent with the model's default (the FieldInfo carries it), so every key is there;
# `_plain_path_matches` would turn the plain path off were that to change. Made by calling
# TypedDict (typed Any here): the items are the contract models' own fields, taken at run time.
_typed_dict: Any = TypedDict
_PlainPosition = _typed_dict(
    "_PlainPosition",
    {name: _field(RtlsPosition, name, required=f.is_required()) for name, f in RtlsPosition.model_fields.items()},
)
_PlainPosition.__pydantic_config__ = ConfigDict(**RtlsPosition.model_config)
_list: Any = list
_PlainBatch = _typed_dict(
    "_PlainBatch",
    {
        "ts": _field(RtlsBatchPayload, "ts", required=False),
        "positions": _item(_list[_PlainPosition], RtlsBatchPayload.model_fields["positions"], required=True),
    },
)
_PlainBatch.__pydantic_config__ = ConfigDict(**RtlsBatchPayload.model_config)
_PLAIN_ADAPTER: TypeAdapter[dict[str, Any]] = TypeAdapter(_PlainBatch)
_DEFAULTS = {name: f.default for name, f in RtlsPosition.model_fields.items() if not f.is_required()}


def _plain_batch(text: str) -> dict[str, Any] | None:
    """The batch as plain dicts, when the checked path would take `text` as a batch without error.

    It would exactly when the text has no BOM and no number that could be non-finite (load_object's
    own fast-path test) and validates as a batch: pydantic's JSON parser accepts no text that
    Python's `json` rejects (it is the stricter one: lone surrogates, nesting past 200 levels), and
    a valid batch is an object holding `positions`. Anything else (None) takes the checked path,
    which words the error. tests/drivers/test_rtls_paths.py holds both paths to the same answers.
    """
    if '"positions"' not in text or text.startswith("\ufeff") or _maybe_non_finite(text):
        return None
    try:
        return _PLAIN_ADAPTER.validate_json(text, strict=True)
    except ValidationError:
        return None


def _may_hold(text: str, key: str) -> bool:
    """Could a position of the batch `text` have the key `key`? Not when the text has no backslash
    and no string `"key"`: without a backslash every key is written as it reads.

    A column no position has is its default (validation fills it in every position's dict), made
    without a pass over the positions.
    """
    return "\\" in text or f'"{key}"' in text


_TAG, _TS, _X, _Y = itemgetter("tag"), itemgetter("ts"), itemgetter("x"), itemgetter("y")


def _plain(ctx: DeviceContext, batch: dict[str, Any], received_at: datetime, text: str) -> list[Reading]:
    ts, skew = resolve_ts(batch["ts"], received_at)
    items: list[dict[str, Any]] = batch["positions"]  # validation filled in every default
    n = len(items)
    raw_ts = list(map(_TS, items))
    if raw_ts.count(None) == n:  # positions without their own time were measured at the batch time
        times = [ts] * n
    else:
        times = []
        for raw in raw_ts:
            if raw is None:
                times.append(ts)
            else:
                pos_ts, pos_skew = resolve_ts(raw, received_at)
                skew = skew or pos_skew
                times.append(pos_ts)

    def optional(name: str) -> NDArray[np.float64]:
        # None (absent q, bat) becomes NaN in a float array: the columns' "absent"
        if not _may_hold(text, name):
            default = _DEFAULTS[name]
            return np.full(n, np.nan if default is None else default, dtype=np.float64)
        return np.array(list(map(itemgetter(name), items)), dtype=np.float64)

    columns = PositionColumns.build(
        list(map(_TAG, items)),
        times,
        np.fromiter(map(_X, items), np.float64, n),
        np.fromiter(map(_Y, items), np.float64, n),
        optional("z"),
        optional("q"),
        optional("bat"),
    )
    return [PositionsReading(device=ctx.id, ts=ts, clock_skew=skew, positions=Positions(columns=columns))]


def _checked(ctx: DeviceContext, text: str, received_at: datetime) -> list[Reading]:
    obj = load_object(text)
    if "positions" in obj:
        batch = validate(RtlsBatchPayload, text)
        raw_ts, items = batch.ts, batch.positions
    else:
        single = validate(RtlsPosition, text)
        raw_ts, items = single.ts, [single]
    ts, skew = resolve_ts(raw_ts, received_at)
    make = _position_unchecked if _FAST else _position_checked
    positions = []
    for item in items:
        # a position without its own time was measured at the batch time
        pos_ts, pos_skew = (ts, False) if item.ts is None else resolve_ts(item.ts, received_at)
        skew = skew or pos_skew
        positions.append(make(item.tag, pos_ts, item.x, item.y, item.z, item.q, item.bat))
    return [PositionsReading(device=ctx.id, ts=ts, clock_skew=skew, positions=tuple(positions))]


def parse(ctx: DeviceContext, topic: str, text: str, received_at: datetime) -> list[Reading]:
    batch = _plain_batch(text) if _PLAIN else None
    if batch is not None:
        return _plain(ctx, batch, received_at, text)
    return _checked(ctx, text, received_at)


def _same(fast: Position, slow: Position) -> bool:
    return (
        fast == slow
        and list(fast.__dict__) == list(slow.__dict__)
        and fast.model_fields_set == slow.model_fields_set
        and fast.model_dump_json() == slow.model_dump_json()
        and {k: getattr(fast, k, None) for k in Position.__slots__}
        == {k: getattr(slow, k, None) for k in Position.__slots__}
    )


def _fast_path_matches() -> bool:
    """The unchecked constructor builds exactly what validation builds (checked once, at import)."""
    args = ("T-1", datetime(2026, 1, 1, tzinfo=UTC), 1.5, -2.0, 0.0, 0.5, None)
    try:
        return _same(_position_unchecked(*args), _position_checked(*args))
    except Exception:
        return False


def _plain_path_matches() -> bool:
    """The plain path builds exactly what the checked path builds (checked once, at import)."""
    text = (
        '{"ts": "2026-01-01T00:00:00Z", "positions": [{"tag": "T-1", "x": 1.5, "y": -2, "q": 0.5, "bat": 80},'
        ' {"tag": "T-2", "x": 3, "y": 4.25, "z": 1.0, "ts": 1767225601.5, "vendor": [1]}]}'
    )
    ctx = DeviceContext(id="gw", family=Family.RTLS)
    now = datetime(2026, 1, 1, 0, 0, 10, tzinfo=UTC)
    try:
        batch = _plain_batch(text)
        if batch is None:
            return False
        [fast], [slow] = _plain(ctx, batch, now, text), _checked(ctx, text, now)
        assert isinstance(fast, PositionsReading) and isinstance(slow, PositionsReading)
        return (
            fast == slow
            and fast.positions.columns.same(slow.positions.columns)
            and all(_same(f, s) for f, s in zip(fast.positions, slow.positions, strict=True))
        )
    except Exception:
        return False


_FAST = _fast_path_matches()
_PLAIN = _FAST and _plain_path_matches()
