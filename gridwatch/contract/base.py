"""Building blocks shared by every contract model: ids, timestamps, UUID v7."""

from __future__ import annotations

import os
import time
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"

Id = Annotated[str, StringConstraints(pattern=ID_PATTERN)]
"""An id of a site, area, grid, zone, device, person or edge (contract §1)."""

Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]


def _require_aware(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("timestamp must carry a timezone (use Z or +hh:mm)")
    return value


AwareDatetime = Annotated[datetime, AfterValidator(_require_aware)]


class Frozen(BaseModel):
    """Base of every contract model: immutable, no unknown keys."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_enum_values=False)


class FrozenOpen(BaseModel):
    """Base of device payloads, which may carry vendor keys we do not use."""

    model_config = ConfigDict(frozen=True, extra="ignore")


def uuid7(now_ms: int | None = None) -> uuid.UUID:
    """A UUID version 7 (RFC 9562): 48-bit Unix milliseconds, then random bits; sorts by time."""
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & 0xFFFF_FFFF_FFFF) << 80
    value |= 0x7 << 76  # version
    value |= ((rand >> 62) & 0xFFF) << 64  # rand_a, 12 bits
    value |= 0b10 << 62  # variant
    value |= rand & 0x3FFF_FFFF_FFFF_FFFF  # rand_b, 62 bits
    return uuid.UUID(int=value)


def new_event_id() -> str:
    return str(uuid7())


def _check_uuid7(value: str) -> str:
    parsed = uuid.UUID(value)
    if parsed.version != 7:
        raise ValueError(f"event_id must be a UUID v7, got version {parsed.version}")
    return str(parsed)


EventId = Annotated[str, AfterValidator(_check_uuid7)]


def utcnow() -> datetime:
    return datetime.now(UTC)


class TimestampOutOfRange(ValueError):
    """A well-formed timestamp outside the calendar we accept (a clock that was never set)."""


def parse_ts(value: Any) -> datetime:
    """Parse a contract timestamp: RFC 3339 string or epoch seconds. Raises ValueError."""
    if isinstance(value, bool):
        raise ValueError("timestamp must be an RFC 3339 string or epoch seconds, not a boolean")
    if isinstance(value, int | float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError("timestamp is not a finite number")
        if not 0 <= value < 32503680000:  # year 3000
            raise ValueError(f"epoch timestamp {value} is out of range")
        return datetime.fromtimestamp(value, UTC)
    if isinstance(value, str):
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"timestamp {value!r} is not RFC 3339") from None
        if parsed.tzinfo is None:
            raise ValueError(f"timestamp {value!r} has no timezone")
        try:
            return parsed.astimezone(UTC)
        except OverflowError:  # e.g. 0001-01-01T00:00:00+14:00 falls before year 1 in UTC
            raise TimestampOutOfRange(f"timestamp {value!r} is out of range") from None
    raise ValueError(f"timestamp must be an RFC 3339 string or epoch seconds, got {type(value).__name__}")


def format_ts(value: datetime) -> str:
    """RFC 3339 with milliseconds and Z, as the contract's examples write it."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


Percent = Annotated[float, Field(ge=0, le=100)]
