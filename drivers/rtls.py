"""RTLS gateway positions (contract §2.4): a batch, or a single position without the wrapper."""

from __future__ import annotations

from datetime import datetime

from drivers import DeviceContext, load_object, resolve_ts, validate
from gridwatch.contract import Position, PositionsReading, Reading, RtlsBatchPayload, RtlsPosition


def parse(ctx: DeviceContext, topic: str, text: str, received_at: datetime) -> list[Reading]:
    obj = load_object(text)
    if "positions" in obj:
        batch = validate(RtlsBatchPayload, text)
        raw_ts, items = batch.ts, batch.positions
    else:
        single = validate(RtlsPosition, text)
        raw_ts, items = single.ts, [single]
    ts, skew = resolve_ts(raw_ts, received_at)
    positions = []
    for item in items:
        # a position without its own time was measured at the batch time
        pos_ts, pos_skew = (ts, False) if item.ts is None else resolve_ts(item.ts, received_at)
        skew = skew or pos_skew
        positions.append(Position(tag=item.tag, ts=pos_ts, x=item.x, y=item.y, z=item.z, q=item.q, bat=item.bat))
    return [PositionsReading(device=ctx.id, ts=ts, clock_skew=skew, positions=tuple(positions))]
