"""Device-side encoders: the inverse of `drivers.parse` for every family (contract §2).

`drivers.parse(ctx, *encode(r, ctx, site), received_at) == [r]` for every reading whose `ts`
has millisecond precision and lies within `drivers.CLOCK_SKEW_S` of `received_at` (a reading
with `clock_skew=True` is sent without a time, so it comes back stamped with `received_at`).
Contact ID carries no time at all: a panel's readings come back stamped with `received_at`.
"""

from __future__ import annotations

import json
import re
from typing import Any

from drivers import DeviceContext, contact_id, data_topic, status_topic, wiegand
from gridwatch.contract import (
    AccessReading,
    CameraEventReading,
    Family,
    PerimeterReading,
    Position,
    PositionsReading,
    Reading,
    StatusReading,
    VitalsReading,
    WristbandEventReading,
    format_ts,
)

_CANONICAL_CARD = re.compile(r"(0|[1-9][0-9]*):(0|[1-9][0-9]*)")

_FAMILY_OF: dict[type[Any], Family] = {
    PerimeterReading: Family.PERIMETER_IR,
    AccessReading: Family.ACCESS,
    PositionsReading: Family.RTLS,
    VitalsReading: Family.WRISTBAND,
    WristbandEventReading: Family.WRISTBAND,
    CameraEventReading: Family.CAMERA,
}


def _json(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":"), allow_nan=False).encode()


def _with_ts(reading: Reading, body: dict[str, Any]) -> dict[str, Any]:
    """A device with a bad clock is modelled as one that sends no time."""
    return body if reading.clock_skew else {"ts": format_ts(reading.ts), **body}


def encode_status(ctx: DeviceContext, site_id: str, online: bool) -> tuple[str, bytes]:
    """The retained status (or MQTT will) a device publishes."""
    return status_topic(site_id, ctx), b"online" if online else b"offline"


def encode(
    reading: Reading, ctx: DeviceContext, site_id: str, *, wiegand: bool = False, checksum: bool = False
) -> tuple[str, bytes]:
    """(topic, payload) a real device `ctx` would publish for `reading`.

    `wiegand=True` sends a canonical card '<facility>:<number>' that fits as raw Wiegand 26 bits;
    `checksum=True` makes a Contact ID panel send the 16-digit form with its check digit.
    Raises ValueError when the reading cannot come from this device.
    """
    if reading.device != ctx.id:
        raise ValueError(f"reading of device {reading.device!r} cannot be published by {ctx.id!r}")
    if isinstance(reading, StatusReading):
        return encode_status(ctx, site_id, reading.online)
    family = _FAMILY_OF[type(reading)]
    if family is not ctx.family:
        raise ValueError(f"a {type(reading).__name__} cannot come from {ctx.family.value} device {ctx.id!r}")
    body: dict[str, Any]
    match reading:
        case PerimeterReading():
            return data_topic(site_id, ctx), _perimeter(reading, ctx, checksum=checksum)
        case AccessReading():
            return data_topic(site_id, ctx), _access(reading, use_wiegand=wiegand)
        case PositionsReading():
            body = {"positions": [_position(p, reading) for p in reading.positions]}
            return data_topic(site_id, ctx), _json(_with_ts(reading, body))
        case VitalsReading():
            return data_topic(site_id, ctx), _json(_with_ts(reading, _vitals(reading)))
        case WristbandEventReading():
            body = {"band": reading.band, "event": reading.event.value}
            return data_topic(site_id, ctx, "event"), _json(_with_ts(reading, body))
        case CameraEventReading():
            body = {"camera": reading.camera, "event": reading.event.value, "active": reading.active}
            return data_topic(site_id, ctx), _json(_with_ts(reading, body))
    raise ValueError(f"no encoder for {type(reading).__name__}")


def _perimeter(reading: PerimeterReading, ctx: DeviceContext, *, checksum: bool) -> bytes:
    if ctx.format != "contact_id":
        body = {"detector": reading.detector, "beam": reading.beam, "state": reading.state.value}
        return _json(_with_ts(reading, body))
    inverse = {target: key for key, target in ctx.contact_id.items()}
    key = inverse.get((reading.detector, reading.beam))
    if key is None:
        raise ValueError(f"panel {ctx.id!r} has no Contact ID zone for {reading.detector} beam {reading.beam}")
    account, zone = key
    return contact_id.encode(account, reading.state, zone, checksum=checksum).encode()


def _access(reading: AccessReading, *, use_wiegand: bool) -> bytes:
    card = reading.card
    if use_wiegand and card is not None and (match := _CANONICAL_CARD.fullmatch(card)):
        facility, number = int(match.group(1)), int(match.group(2))
        if facility < 1 << wiegand.FACILITY_BITS[26] and number < 1 << wiegand.CARD_BITS:
            card = "wiegand26:" + wiegand.encode(26, facility, number)
    body: dict[str, Any] = {"door": reading.door, "event": reading.event.value}
    if reading.reader is not None:
        body["reader"] = reading.reader
    if card is not None:
        body["card"] = card
    if reading.direction is not None:
        body["direction"] = reading.direction.value
    return _json(_with_ts(reading, body))


def _position(position: Position, reading: PositionsReading) -> dict[str, Any]:
    body: dict[str, Any] = {"tag": position.tag, "x": position.x, "y": position.y, "z": position.z}
    if position.q is not None:
        body["q"] = position.q
    if position.bat is not None:
        body["bat"] = position.bat
    if position.ts != reading.ts:
        body["ts"] = format_ts(position.ts)
    return body


def _vitals(reading: VitalsReading) -> dict[str, Any]:
    body: dict[str, Any] = {"band": reading.band}
    for name in ("hr", "temp", "bat"):
        value = getattr(reading, name)
        if value is not None:
            body[name] = value
    if reading.strap is not None:
        body["strap"] = reading.strap.value
    if reading.gps is not None:
        body["gps"] = {"lat": reading.gps.lat, "lon": reading.gps.lon, "acc_m": reading.gps.acc_m}
    return body
