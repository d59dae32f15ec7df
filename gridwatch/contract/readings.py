"""Typed readings: what drivers produce from device bytes and the edge consumes.

Every reading carries the id of the device that published it (`device`), an aware UTC `ts`
and `clock_skew` (True when the device clock was missing or more than 300 s off, in which
case `ts` is the edge's receive time, contract §2).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import ConfigDict, Field, TypeAdapter

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


class PositionsReading(_Reading):
    """An RTLS gateway batch (2.4); a single position arrives as a batch of one."""

    kind: Literal["positions"] = "positions"
    positions: tuple[Position, ...]


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
