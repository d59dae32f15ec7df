"""A device's retained `.../status` topic and MQTT will: `online` / `offline` (contract §2)."""

from __future__ import annotations

from datetime import datetime

from drivers import DeviceContext, DriverError
from gridwatch.contract import Reading, StatusReading

_STATES = {"online": True, "offline": False}


def parse(ctx: DeviceContext, topic: str, text: str, received_at: datetime) -> list[Reading]:
    """A status body carries no device time: the receive time is the reading's time (no skew)."""
    word = text.strip().strip('"').lower()
    if word not in _STATES:
        raise DriverError("bad_format", f"status must be 'online' or 'offline', got {text[:40]!r}")
    return [StatusReading(device=ctx.id, ts=received_at, online=_STATES[word])]
