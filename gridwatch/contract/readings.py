"""Typed readings: what drivers produce from device bytes and the edge consumes.

Every reading carries the id of the device that published it (`device`), an aware UTC `ts`
and `clock_skew` (True when the device clock was missing or more than 300 s off, in which
case `ts` is the edge's receive time, contract §2).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal, overload

import numpy as np
from numpy.typing import NDArray
from pydantic import ConfigDict, Field, GetCoreSchemaHandler, TypeAdapter
from pydantic_core import core_schema

from .base import AwareDatetime, Frozen, Id
from .devices import GpsFix
from .enums import AccessEvent, CameraEvent, Direction, PerimeterState, StrapState, WristbandEvent


class _Reading(Frozen):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    device: Id
    ts: AwareDatetime
    clock_skew: bool = False


class PerimeterReading(_Reading):
    kind: Literal["perimeter"] = "perimeter"
    detector: Id
    beam: int = Field(ge=1, le=64)
    state: PerimeterState


class AccessReading(_Reading):
    kind: Literal["access"] = "access"
    door: Id
    reader: Id | None = None
    event: AccessEvent
    card: str | None = Field(default=None, description="Card number; Wiegand cards as '<facility>:<number>'")
    direction: Direction | None = None


class Position(Frozen):
    """One tag position in site metres."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    tag: Id
    ts: AwareDatetime
    x: float
    y: float
    z: float = 0.0
    q: float | None = None
    bat: float | None = None


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
_POSITION_FIELDS = frozenset(Position.model_fields)
_new_position = Position.__new__
_set = object.__setattr__


def epoch_us(ts: datetime) -> int:
    """Microseconds since 1970 of an aware time: exact, so differences equal `(a - b)` as timedeltas."""
    return (ts - _EPOCH) // _US


@dataclass(frozen=True, slots=True, eq=False)
class PositionColumns:
    """An RTLS batch as columns: what the edge's rules and batcher work on, one array per field.

    `tag` and `ts` hold each position's tag and aware time; `ts_us` the same times as exact epoch
    microseconds (downsampling compares them); `q` and `bat` are NaN where the position has none
    (a Position's numbers are finite, so NaN is free to mean absent). Build it with `build`, which
    derives `ts_us`, or `of` from Position objects.
    """

    tag: list[str]
    ts: list[datetime]
    ts_us: NDArray[np.int64]
    x: NDArray[np.float64]
    y: NDArray[np.float64]
    z: NDArray[np.float64]
    q: NDArray[np.float64]
    bat: NDArray[np.float64]

    @classmethod
    def build(
        cls,
        tag: list[str],
        ts: list[datetime],
        x: NDArray[np.float64],
        y: NDArray[np.float64],
        z: NDArray[np.float64],
        q: NDArray[np.float64],
        bat: NDArray[np.float64],
    ) -> PositionColumns:
        # a batch's positions mostly share one time object: convert each distinct time once
        times = {t: epoch_us(t) for t in dict.fromkeys(ts)}
        if len(times) == 1:
            ts_us = np.full(len(ts), next(iter(times.values())), dtype=np.int64)
        else:
            ts_us = np.fromiter(map(times.__getitem__, ts), np.int64, len(ts))
        return cls(tag, ts, ts_us, x, y, z, q, bat)

    @classmethod
    def of(cls, positions: Sequence[Position]) -> PositionColumns:
        n = len(positions)
        nan = float("nan")
        return cls.build(
            [p.tag for p in positions],
            [p.ts for p in positions],
            np.fromiter([p.x for p in positions], np.float64, n),
            np.fromiter([p.y for p in positions], np.float64, n),
            np.fromiter([p.z for p in positions], np.float64, n),
            np.fromiter([nan if p.q is None else p.q for p in positions], np.float64, n),
            np.fromiter([nan if p.bat is None else p.bat for p in positions], np.float64, n),
        )

    def __len__(self) -> int:
        return len(self.tag)

    def take(self, index: list[int]) -> PositionColumns:
        """The positions at `index`, in that order."""
        at = np.array(index, dtype=np.int64)
        return PositionColumns(
            [self.tag[i] for i in index],
            [self.ts[i] for i in index],
            self.ts_us[at],
            self.x[at],
            self.y[at],
            self.z[at],
            self.q[at],
            self.bat[at],
        )

    @classmethod
    def concat(cls, parts: Sequence[PositionColumns]) -> PositionColumns:
        """The positions of `parts`, one after the other."""
        if len(parts) == 1:
            return parts[0]
        return cls(
            [tag for part in parts for tag in part.tag],
            [t for part in parts for t in part.ts],
            np.concatenate([part.ts_us for part in parts]),
            np.concatenate([part.x for part in parts]),
            np.concatenate([part.y for part in parts]),
            np.concatenate([part.z for part in parts]),
            np.concatenate([part.q for part in parts]),
            np.concatenate([part.bat for part in parts]),
        )

    def positions(self) -> tuple[Position, ...]:
        """The Position objects these columns hold, equal to what validating each one builds."""
        out = []
        ts = self.ts
        qs = [None if v != v else v for v in self.q.tolist()]  # NaN: absent
        bats = [None if v != v else v for v in self.bat.tolist()]
        rows = zip(self.tag, ts, self.x.tolist(), self.y.tolist(), self.z.tolist(), qs, bats, strict=True)
        for tag, t, x, y, z, q, bat in rows:
            # the values were validated into these columns: set them as validation would, in field order
            pos = _new_position(Position)
            _set(pos, "__dict__", {"tag": tag, "ts": t, "x": x, "y": y, "z": z, "q": q, "bat": bat})
            _set(pos, "__pydantic_fields_set__", set(_POSITION_FIELDS))
            _set(pos, "__pydantic_extra__", None)
            _set(pos, "__pydantic_private__", None)
            out.append(pos)
        return tuple(out)

    def same(self, other: PositionColumns) -> bool:
        """Equal positions, as Position equality has it (times equal as instants; -0.0 == 0.0)."""
        return (
            self.tag == other.tag
            and self.ts == other.ts
            and all(
                np.array_equal(a, b, equal_nan=True)
                for a, b in (
                    (self.x, other.x),
                    (self.y, other.y),
                    (self.z, other.z),
                    (self.q, other.q),
                    (self.bat, other.bat),
                )
            )
        )


class Positions(Sequence[Position]):
    """The positions of a batch: a read-only sequence of Position that keeps them as columns.

    The RTLS driver builds it from columns and the edge reads `columns`; Position objects are
    built only when someone iterates or indexes it (simulators, tests, a reading's JSON), once.
    Built from Position objects (simulators, tests, JSON), it makes the columns on first use.
    Equal to another Positions or to a tuple of the same Positions.
    """

    __slots__ = ("_columns", "_items")

    def __init__(self, columns: PositionColumns | None = None, items: tuple[Position, ...] | None = None) -> None:
        if columns is None and items is None:
            raise ValueError("Positions needs columns or items")
        self._columns = columns
        self._items = items

    @property
    def columns(self) -> PositionColumns:
        if self._columns is None:
            assert self._items is not None
            self._columns = PositionColumns.of(self._items)
        return self._columns

    @property
    def items(self) -> tuple[Position, ...]:
        if self._items is None:
            assert self._columns is not None
            self._items = self._columns.positions()
        return self._items

    def __len__(self) -> int:
        return len(self._items) if self._items is not None else len(self.columns)

    @overload
    def __getitem__(self, index: int) -> Position: ...
    @overload
    def __getitem__(self, index: slice) -> tuple[Position, ...]: ...
    def __getitem__(self, index: int | slice) -> Position | tuple[Position, ...]:
        return self.items[index]

    def __iter__(self) -> Iterator[Position]:
        return iter(self.items)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Positions):
            if self._items is not None and other._items is not None:
                return self._items == other._items
            return self.columns.same(other.columns)
        if isinstance(other, tuple):
            return self.items == other
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.items)

    def __repr__(self) -> str:
        return f"Positions({self.items!r})"

    @classmethod
    def _validated(cls, items: tuple[Position, ...]) -> Positions:
        return cls(items=items)

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        # validated as (and written as) what it replaces, `tuple[Position, ...]`; a Positions passes as it is
        items = handler.generate_schema(tuple[Position, ...])
        from_items = core_schema.no_info_after_validator_function(cls._validated, items)
        return core_schema.json_or_python_schema(
            json_schema=from_items,
            python_schema=core_schema.union_schema([core_schema.is_instance_schema(cls), from_items]),
            serialization=core_schema.plain_serializer_function_ser_schema(
                lambda v: v.items if isinstance(v, Positions) else tuple(v), return_schema=items
            ),
        )


def columns_of(positions: Iterable[Position]) -> PositionColumns:
    """The columns of a reading's positions, whatever sequence they are (a `model_copy(update=...)`
    skips validation, so a copied reading may hold a plain tuple)."""
    if isinstance(positions, Positions):
        return positions.columns
    return PositionColumns.of(tuple(positions))


class PositionsReading(_Reading):
    """An RTLS gateway batch (2.4); a single position arrives as a batch of one."""

    kind: Literal["positions"] = "positions"
    positions: Positions


class VitalsReading(_Reading):
    kind: Literal["vitals"] = "vitals"
    band: Id
    hr: float | None = None
    temp: float | None = None
    bat: float | None = None
    strap: StrapState | None = None
    gps: GpsFix | None = None


class WristbandEventReading(_Reading):
    kind: Literal["wristband_event"] = "wristband_event"
    band: Id
    event: WristbandEvent


class CameraEventReading(_Reading):
    kind: Literal["camera_event"] = "camera_event"
    camera: Id
    event: CameraEvent
    active: bool = True


class StatusReading(_Reading):
    """A device's retained status or its MQTT will (`online`/`offline`)."""

    kind: Literal["status"] = "status"
    online: bool


Reading = Annotated[
    PerimeterReading
    | AccessReading
    | PositionsReading
    | VitalsReading
    | WristbandEventReading
    | CameraEventReading
    | StatusReading,
    Field(discriminator="kind"),
]

READING_ADAPTER: TypeAdapter[Reading] = TypeAdapter(Reading)
