"""Camera events published by the camera itself (contract §2.6)."""

from __future__ import annotations

from datetime import datetime

from drivers import DeviceContext, load_object, resolve_ts, validate
from gridwatch.contract import CameraEventPayload, CameraEventReading, Reading


def parse(ctx: DeviceContext, topic: str, text: str, received_at: datetime) -> list[Reading]:
    load_object(text)
    body = validate(CameraEventPayload, text)
    ts, skew = resolve_ts(body.ts, received_at)
    return [
        CameraEventReading(
            device=ctx.id, ts=ts, clock_skew=skew, camera=body.camera, event=body.event, active=body.active
        )
    ]
