"""`parse_object` (one parse when it can) answers exactly what `load_object` + `validate` answer."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from drivers import DriverError, load_object, parse_object, validate
from gridwatch.contract import AccessPayload, PerimeterPayload

SAME = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
MODELS: list[type[BaseModel]] = [PerimeterPayload, AccessPayload]

VALID = [
    {"ts": "2026-11-23T06:00:00.123Z", "detector": "ir-1", "beam": 2, "state": "alarm"},
    {"ts": 1795500000.5, "detector": "ir-1", "state": "normal"},
    {
        "ts": "2026-11-23T06:00:00Z",
        "door": "D-1",
        "reader": "rd-1",
        "event": "granted",
        "card": "7:9",
        "direction": "in",
    },
    {"door": "D-1", "event": "door_open"},
    {"door": "D-1", "event": "granted", "card": "wiegand26:" + "0" * 26},
]
KEYS = ["ts", "detector", "beam", "state", "door", "reader", "event", "card", "direction", "extra"]

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
    | st.sampled_from(["alarm", "normal", "granted", "door_open", "in", "ir-1", "D-1", "2026-11-23T06:00:00Z"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)


def _outcome(fn: Any) -> tuple[str, Any]:
    try:
        return ("ok", fn().model_dump())
    except DriverError as exc:
        return ("error", (exc.reason, exc.message))


def _slow(model: type[BaseModel], text: str) -> BaseModel:
    load_object(text)
    return validate(model, text)


def _assert_same(text: str) -> None:
    for model in MODELS:
        assert _outcome(lambda m=model: parse_object(m, text)) == _outcome(lambda m=model: _slow(m, text))


@SAME
@given(base=st.sampled_from(VALID), changes=st.dictionaries(st.sampled_from(KEYS), json_values, max_size=3))
def test_objects_near_valid_payloads_give_the_same_answer(base: dict[str, Any], changes: dict[str, Any]) -> None:
    text = json.dumps({**base, **changes})  # json.dumps writes NaN / Infinity for non-finite floats
    _assert_same(text)


@SAME
@given(base=st.sampled_from(VALID), cut=st.integers(min_value=0, max_value=200), junk=st.text(max_size=4))
@example(base=VALID[0], cut=1, junk="\ufeff")
@example(base=VALID[0], cut=30, junk="\x01")
@example(base=VALID[0], cut=30, junk="\\ud800")
@example(base=VALID[0], cut=0, junk="\ufeff")
def test_spliced_texts_give_the_same_answer(base: dict[str, Any], cut: int, junk: str) -> None:
    text = json.dumps(base)
    cut = min(cut, len(text))
    _assert_same(text[:cut] + junk + text[cut:])
    _assert_same(junk + text)


@SAME
@given(text=st.text(max_size=80))
@example(text='{"detector":"ir-1","state":"alarm","x":1e400}')
@example(text='{"detector":"ir-1","state":"alarm","x":-1e999}')
@example(text='{"detector":"ir-1","state":"alarm","x":' + "9" * 400 + "}")
@example(text='{"detector":"ir-1","state":"alarm","x":NaN}')
@example(text='[{"detector":"ir-1","state":"alarm"}]')
@example(text='{"detector":"ir-1","state":"alarm","detector":"ir-2"}')
@example(text='{"detector":"ir-1","state":"alarm","beam":2.0}')
@example(text='{"detector":"ir-1","state":"alarm","beam":65}')
@example(text='{"door":"D-1","event":"granted","x":' + "[" * 5000 + "]" * 5000 + "}")
def test_any_text_gives_the_same_answer(text: str) -> None:
    _assert_same(text)
