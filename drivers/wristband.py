"""Wristband telemetry and events (contract §2.5); the topic's last level says which."""

from __future__ import annotations

from datetime import datetime

from drivers import DeviceContext, DriverError, last_segment, load_object, resolve_ts, validate
from gridwatch.contract import (
    Reading,
    VitalsReading,
    WristbandEventPayload,
    WristbandEventReading,
    WristbandTelemetryPayload,
)

TEMP_RANGE = (25.0, 45.0)
"""Skin temperatures outside this are a sensor fault, not a fever (the payload model allows 20..46)."""


def parse(ctx: DeviceContext, topic: str, text: str, received_at: datetime) -> list[Reading]:
    load_object(text)
    if last_segment(topic) == "event":
        event = validate(WristbandEventPayload, text)
        ts, skew = resolve_ts(event.ts, received_at)
        return [WristbandEventReading(device=ctx.id, ts=ts, clock_skew=skew, band=event.band, event=event.event)]
    body = validate(WristbandTelemetryPayload, text)
    if body.temp is not None and not TEMP_RANGE[0] <= body.temp <= TEMP_RANGE[1]:
        raise DriverError("out_of_range", f"temp: {body.temp} outside {TEMP_RANGE[0]}..{TEMP_RANGE[1]} °C")
    ts, skew = resolve_ts(body.ts, received_at)
    return [
        VitalsReading(
            device=ctx.id,
            ts=ts,
            clock_skew=skew,
            band=body.band,
            hr=body.hr,
            temp=body.temp,
            bat=body.bat,
            strap=body.strap,
            gps=body.gps,
        )
    ]
