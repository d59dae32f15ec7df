"""Device-side JSON payloads (contract §2): what devices publish and simulators encode.

Payload models ignore vendor keys they do not know (`FrozenOpen`) but reject wrong types and
out-of-range values; `ts` stays raw here because the driver decides about clock skew.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import ConfigDict, Field, StrictFloat, StrictInt, StrictStr

from .base import FrozenOpen, Id
from .enums import AccessEvent, CameraEvent, Direction, PerimeterState, StrapState, WristbandEvent

RawTs = StrictStr | StrictFloat | StrictInt | None
"""A timestamp as sent: RFC 3339 string, epoch seconds, or absent."""

Finite = Annotated[float, Field(allow_inf_nan=False)]


class _Payload(FrozenOpen):
    model_config = ConfigDict(frozen=True, extra="ignore", allow_inf_nan=False)


class PerimeterPayload(_Payload):
    """2.1 `{"ts", "detector", "beam", "state"}`."""

    ts: RawTs = None
    detector: Id
    beam: int = Field(default=1, ge=1, le=64, strict=True)
    state: PerimeterState


class AccessPayload(_Payload):
    """2.3 access-control controller event."""

    ts: RawTs = None
    door: Id
    reader: Id | None = None
    event: AccessEvent
    card: StrictStr | None = Field(default=None, max_length=80)
    direction: Direction | None = None


class GpsFix(_Payload):
    lat: Finite = Field(ge=-90, le=90)
    lon: Finite = Field(ge=-180, le=180)
    acc_m: Finite = Field(default=10.0, ge=0, le=100_000, description="Horizontal accuracy radius, metres")


class RtlsPosition(_Payload):
    """One position in a 2.4 batch; coordinates are site metres."""

    ts: RawTs = None
    tag: Id
    x: Finite = Field(ge=-1e6, le=1e6)
    y: Finite = Field(ge=-1e6, le=1e6)
    z: Finite = Field(default=0.0, ge=-1e4, le=1e4)
    q: Finite | None = Field(default=None, ge=0, le=1)
    bat: Finite | None = Field(default=None, ge=0, le=100)


class RtlsBatchPayload(_Payload):
    """2.4 `{"ts", "positions": [...]}`."""

    ts: RawTs = None
    positions: list[RtlsPosition] = Field(min_length=1, max_length=10_000)


class WristbandTelemetryPayload(_Payload):
    """2.5 telemetry; every field but `band` optional."""

    ts: RawTs = None
    band: Id
    hr: Finite | None = Field(default=None, ge=0, le=300)
    temp: Finite | None = Field(default=None, ge=25, le=45)
    bat: Finite | None = Field(default=None, ge=0, le=100)
    strap: StrapState | None = None
    gps: GpsFix | None = None


class WristbandEventPayload(_Payload):
    """2.5 event `{"ts", "band", "event"}`."""

    ts: RawTs = None
    band: Id
    event: WristbandEvent


class CameraEventPayload(_Payload):
    """2.6 `{"ts", "camera", "event", "active"}`."""

    ts: RawTs = None
    camera: Id
    event: CameraEvent
    active: bool = Field(default=True, strict=True)


DeviceStatus = Literal["online", "offline"]
"""Body of a device's retained `.../status` topic and of its MQTT will."""
