"""Device drivers: the bytes a device publishes in, typed readings out (contract §2).

Drivers are pure: `parse(ctx, topic, payload, received_at)` never reads a clock or a socket, and
for any bytes it either returns readings or raises `DriverError` with a reason the edge counts.
The per-family modules import the primitives defined at the top of this module, so the family
imports and the hand-written registry come after them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ValidationError

from gridwatch.config.models import Device
from gridwatch.contract import Family, Reading, parse_ts
from gridwatch.contract.base import TimestampOutOfRange

CLOCK_SKEW_S = 300
"""A device timestamp further than this from the receive time is replaced by the receive time."""

MAX_PAYLOAD_BYTES = 64 * 1024

Reason = Literal[
    "not_utf8",
    "not_json",
    "schema",
    "out_of_range",
    "bad_checksum",
    "bad_parity",
    "bad_format",
    "unknown_zone",
    "unknown_device",
    "too_large",
]

# pydantic error types that mean "right type, value out of bounds"
_RANGE_ERRORS = frozenset({"greater_than", "greater_than_equal", "less_than", "less_than_equal", "finite_number"})


class DriverError(Exception):
    """Bad input from a device; `reason` is the dead-letter counter key (contract §2)."""

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(reason, message)  # both in args, so the error pickles across processes
        self.reason: Reason = reason
        self.message = message

    def __str__(self) -> str:
        return f"{self.reason}: {self.message}"


@dataclass(frozen=True, slots=True)
class DeviceContext:
    """What a driver needs to know about the publishing device."""

    id: str
    family: Family
    format: str = "json"
    contact_id: Mapping[tuple[str, int], tuple[str, int]] = field(default_factory=dict, hash=False)
    """Contact ID panels: (account, zone) -> (detector, beam)."""
    topic: str | None = None

    @classmethod
    def from_config(cls, device: Device) -> DeviceContext:
        return cls(
            id=device.id,
            family=device.family,
            format=device.format,
            contact_id={(z.account.upper(), z.zone): (z.detector, z.beam) for z in device.contact_id},
            topic=device.topic,
        )


# -- helpers shared by the family modules ---------------------------------------------------------


def decode_text(payload: bytes) -> str:
    try:
        return payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DriverError("not_utf8", f"payload is not UTF-8 ({exc.reason} at byte {exc.start})") from None


class _NonFinite(Exception):
    pass


def _parse_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _NonFinite(text)
    return value


def _parse_constant(text: str) -> float:
    raise _NonFinite(text)


_PLAIN_DECODER = json.JSONDecoder()
# The shape of the numbers in a text: ASCII digits -> "0", e/E -> "e", +/- -> "+", anything else -> " ".
_NUMBER_SHAPE = bytes(
    {
        **dict.fromkeys(range(256), 32),
        **dict.fromkeys(b"0123456789", 48),
        **dict.fromkeys(b"eE", 101),
        **dict.fromkeys(b"+-", 43),
    }.values()
)
_LONG_DIGITS = b"0" * 100


def _maybe_non_finite(text: str) -> bool:
    """Could the text hold a non-finite number? A NaN/Infinity constant, a 3-digit exponent or a run of
    100+ digits (a float overflows only past 1e308; without these, |value| < 1e100 * 1e99)."""
    if "NaN" in text or "Infinity" in text:
        return True
    shape = text.encode("utf-8", "replace").translate(_NUMBER_SHAPE)
    return b"e000" in shape or b"e+000" in shape or _LONG_DIGITS in shape


def load_object(text: str) -> dict[str, Any]:
    """Parse a JSON object; NaN, Infinity or overflowing numbers anywhere are out of range."""
    obj: Any = None
    if not text.startswith("\ufeff") and not _maybe_non_finite(text):
        # fast path: no number in this text can be non-finite, so the per-float hook is not needed
        try:
            obj = _PLAIN_DECODER.decode(text)
        except (ValueError, RecursionError):
            obj = None  # the checked parse below raises the same error as always
        else:
            if not isinstance(obj, dict):
                raise DriverError("schema", f"payload must be a JSON object, got {type(obj).__name__}")
            return obj
    try:
        # json.loads, not the decoder directly: it also rejects a leading BOM with its own message
        obj = json.loads(text, parse_float=_parse_float, parse_constant=_parse_constant)
    except _NonFinite as exc:
        raise DriverError("out_of_range", f"non-finite number {exc} in payload") from None
    except (ValueError, RecursionError) as exc:
        raise DriverError("not_json", f"payload is not JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise DriverError("schema", f"payload must be a JSON object, got {type(obj).__name__}")
    return obj


M = TypeVar("M", bound=BaseModel)


def validate(model: type[M], text: str) -> M:
    """Validate JSON text strictly (wrong types are rejected, not coerced)."""
    try:
        return model.model_validate_json(text, strict=True)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False)
        first = errors[0] if errors else {"type": "unknown", "loc": (), "msg": str(exc)}
        where = ".".join(str(part) for part in first["loc"]) or "payload"
        message = f"{where}: {first['msg']}"
        if any(e["type"] == "json_invalid" for e in errors):
            raise DriverError("not_json", message) from None
        if all(e["type"] in _RANGE_ERRORS for e in errors):
            raise DriverError("out_of_range", message) from None
        raise DriverError("schema", message) from None


def parse_object(model: type[M], text: str) -> M:
    """`load_object(text)` then `validate(model, text)`: the same model or the same DriverError.

    A text that can hold no non-finite number and validates is parsed once (by pydantic) instead of
    twice; anything that fails validation goes the checked way, which raises the error it always did.
    Python's json never refuses what pydantic's parser accepts here (tests/drivers/test_parse_object.py).
    """
    if not text.startswith("\ufeff") and not _maybe_non_finite(text):
        try:
            return model.model_validate_json(text, strict=True)
        except ValidationError:
            pass
    load_object(text)
    return validate(model, text)


def resolve_ts(raw: str | float | None, received_at: datetime) -> tuple[datetime, bool]:
    """The reading's (ts, clock_skew): device time if present, valid and within CLOCK_SKEW_S."""
    if raw is None:
        return received_at, True
    try:
        ts = parse_ts(raw)
    except (OverflowError, TimestampOutOfRange):
        # a well-formed time at the very edge of the calendar (year 1 or 9999): a clock that is wildly off
        return received_at, True
    except ValueError as exc:
        if isinstance(raw, str):
            raise DriverError("schema", f"ts: {exc}") from None
        # an epoch number outside 1970..3000 is a clock that was never set, not a malformed message
        return received_at, True
    if abs(ts - received_at) > timedelta(seconds=CLOCK_SKEW_S):
        return received_at, True
    return ts, False


def last_segment(topic: str) -> str:
    return topic.rsplit("/", 1)[-1]


# -- topics ---------------------------------------------------------------------------------------

_FAMILY_SUFFIX: dict[Family, str] = {
    Family.PERIMETER_IR: "event",
    Family.ACCESS: "event",
    Family.RTLS: "positions",
    Family.WRISTBAND: "telemetry",
    Family.CAMERA: "event",
}


_FAMILY_FOLDER: dict[Family, str] = {
    Family.PERIMETER_IR: "perimeter",
    Family.ACCESS: "access",
    Family.RTLS: "rtls",
    Family.WRISTBAND: "wristband",
    Family.CAMERA: "camera",
}
"""The topic level naming the family (contract §2 writes `perimeter`, not `perimeter_ir`)."""


def family_prefix(site_id: str, family: Family) -> str:
    """`site/{s}/{family level}`: under it, every default topic of the family's devices."""
    return f"site/{site_id}/{_FAMILY_FOLDER[family]}"


def _base_topic(site_id: str, device: Device | DeviceContext) -> str:
    """`site/{s}/{family}/{device}`, or the parent level of the configured topic override."""
    if device.topic:
        return device.topic.rsplit("/", 1)[0] if "/" in device.topic else device.topic
    return f"site/{site_id}/{_FAMILY_FOLDER[device.family]}/{device.id}"


def data_topic(site_id: str, device: Device | DeviceContext, suffix: str | None = None) -> str:
    """The topic a device publishes readings on; `suffix` picks e.g. a wristband's `event` topic."""
    if suffix is None or suffix == _FAMILY_SUFFIX[device.family]:
        return device.topic or f"{_base_topic(site_id, device)}/{_FAMILY_SUFFIX[device.family]}"
    return f"{_base_topic(site_id, device)}/{suffix}"


def status_topic(site_id: str, device: Device | DeviceContext) -> str:
    return f"{_base_topic(site_id, device)}/status"


def device_topics(site_id: str, device: Device | DeviceContext) -> list[str]:
    """Topics to subscribe for one device: its data topic(s) and its retained status topic."""
    topics = [data_topic(site_id, device)]
    if device.family is Family.WRISTBAND:
        topics.append(data_topic(site_id, device, "event"))
    topics.append(status_topic(site_id, device))
    return list(dict.fromkeys(topics))


# -- the registry ---------------------------------------------------------------------------------

from drivers import access, camera, perimeter_ir, rtls, status, wristband  # noqa: E402

Parser = Callable[[DeviceContext, str, str, datetime], list[Reading]]

PARSERS: dict[Family, Parser] = {
    Family.PERIMETER_IR: perimeter_ir.parse,
    Family.ACCESS: access.parse,
    Family.RTLS: rtls.parse,
    Family.WRISTBAND: wristband.parse,
    Family.CAMERA: camera.parse,
}


def parse(ctx: DeviceContext, topic: str, payload: bytes, received_at: datetime) -> list[Reading]:
    """Readings in one device message; raises DriverError (and nothing else) on bad input."""
    if received_at.tzinfo is None:
        raise ValueError("received_at must be timezone-aware")
    received_at = received_at.astimezone(UTC)
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise DriverError("too_large", f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD_BYTES}")
    try:
        text = decode_text(payload)
        if last_segment(topic) == "status":
            return status.parse(ctx, topic, text, received_at)
        return PARSERS[ctx.family](ctx, topic, text, received_at)
    except DriverError:
        raise
    except Exception as exc:
        # the edge must survive any bytes: a parser bug becomes a dead letter, not a crash
        raise DriverError("schema", f"unparseable payload ({type(exc).__name__}: {exc})") from exc


__all__ = [
    "CLOCK_SKEW_S",
    "MAX_PAYLOAD_BYTES",
    "PARSERS",
    "DeviceContext",
    "DriverError",
    "Reason",
    "data_topic",
    "device_topics",
    "family_prefix",
    "parse",
    "parse_object",
    "status_topic",
]
