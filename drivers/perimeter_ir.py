"""Perimeter IR detectors and panels: JSON (contract §2.1) or Contact ID text (§2.2)."""

from __future__ import annotations

from datetime import datetime

from drivers import DeviceContext, DriverError, contact_id, parse_object, resolve_ts
from gridwatch.contract import PerimeterPayload, PerimeterReading, Reading


def parse(ctx: DeviceContext, topic: str, text: str, received_at: datetime) -> list[Reading]:
    # a Contact ID panel may also speak JSON (some gateways wrap it); the first character decides
    if ctx.format == "contact_id" and not text.lstrip().startswith("{"):
        return [_parse_contact_id(ctx, text, received_at)]
    body = parse_object(PerimeterPayload, text)
    ts, skew = resolve_ts(body.ts, received_at)
    return [
        PerimeterReading(
            device=ctx.id, ts=ts, clock_skew=skew, detector=body.detector, beam=body.beam, state=body.state
        )
    ]


def _parse_contact_id(ctx: DeviceContext, text: str, received_at: datetime) -> PerimeterReading:
    event = contact_id.decode(text)
    target = ctx.contact_id.get((event.account, event.zone))
    if target is None:
        raise DriverError("unknown_zone", f"Contact ID account {event.account} zone {event.zone} is not mapped")
    detector, beam = target
    # Contact ID carries no time: the panel reports in real time, so receive time is event time
    return PerimeterReading(device=ctx.id, ts=received_at, detector=detector, beam=beam, state=event.state)
