"""Readings the drivers construct without a second validation equal the validated ones."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

import drivers
from drivers import DeviceContext, wiegand
from gridwatch.contract import AccessEvent, Direction, Family, PerimeterState

NOW = datetime(2026, 11, 23, 6, 0, 0, tzinfo=UTC)
ids = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,20}", fullmatch=True)
wiegand_cards = st.builds(
    lambda f, c: "wiegand26:" + wiegand.encode(26, f, c), st.integers(0, 255), st.integers(0, 65535)
)
times = st.none() | st.integers(-400, 400).map(lambda s: (NOW + timedelta(seconds=s)).isoformat())


def same_as_validated(ctx: DeviceContext, topic: str, body: dict[str, Any]) -> None:
    payload = json.dumps({k: v for k, v in body.items() if v is not None}).encode()
    (reading,) = drivers.parse(ctx, topic, payload, NOW)
    validated = type(reading).model_validate(reading.model_dump())
    assert reading == validated
    assert reading.model_dump_json() == validated.model_dump_json()
    assert list(reading.__dict__) == list(validated.__dict__)


@given(ts=times, detector=ids, beam=st.integers(1, 64), state=st.sampled_from(list(PerimeterState)))
def test_perimeter(ts: str | None, detector: str, beam: int, state: PerimeterState) -> None:
    ctx = DeviceContext(id="ir-1", family=Family.PERIMETER_IR)
    body = {"ts": ts, "detector": detector, "beam": beam, "state": str(state)}
    same_as_validated(ctx, "site/s/perimeter/ir-1/event", body)


@given(
    ts=times,
    door=ids,
    reader=st.none() | ids,
    event=st.sampled_from(list(AccessEvent)),
    card=st.none() | st.text(max_size=80).filter(lambda c: not c.startswith("wiegand")) | wiegand_cards,
    direction=st.none() | st.sampled_from(list(Direction)),
)
def test_access(
    ts: str | None, door: str, reader: str | None, event: AccessEvent, card: str | None, direction: Direction | None
) -> None:
    ctx = DeviceContext(id="acc-1", family=Family.ACCESS)
    body = {
        "ts": ts, "door": door, "reader": reader, "event": str(event), "card": card,
        "direction": None if direction is None else str(direction),
    }  # fmt: skip
    same_as_validated(ctx, "site/s/access/acc-1/event", body)
