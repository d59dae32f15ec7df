"""Access-control controller events (contract §2.3), decoding raw Wiegand cards."""

from __future__ import annotations

import re
from datetime import datetime

from drivers import DeviceContext, parse_object, resolve_ts, wiegand
from gridwatch.contract import AccessPayload, AccessReading, Reading

_WIEGAND = re.compile(r"wiegand([0-9]+):(.*)", re.DOTALL)


def card_number(card: str | None) -> str | None:
    """A card as the rules see it: raw Wiegand bits become '<facility>:<number>'."""
    if card is None:
        return None
    match = _WIEGAND.fullmatch(card)
    if match is None:
        return card
    facility, number = wiegand.decode(int(match.group(1)), match.group(2))
    return f"{facility}:{number}"


def parse(ctx: DeviceContext, topic: str, text: str, received_at: datetime) -> list[Reading]:
    body = parse_object(AccessPayload, text)
    card = card_number(body.card)
    ts, skew = resolve_ts(body.ts, received_at)
    return [
        AccessReading(
            device=ctx.id,
            ts=ts,
            clock_skew=skew,
            door=body.door,
            reader=body.reader,
            event=body.event,
            card=card,
            direction=body.direction,
        )
    ]
