"""The RTLS driver's plain path (one parse, straight into columns) gives the checked path's answers.

`drivers.rtls.parse` tries the plain path first and falls back to `_checked` (load_object, then the
contract models: the driver as it always was). For any text, both must return equal readings, with
equal columns and Positions identical down to their attribute order, or raise the same DriverError
(reason and message).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import drivers
from drivers import DeviceContext, DriverError, rtls
from gridwatch.contract import Family, PositionsReading, Reading, RtlsBatchPayload
from gridwatch.contract.readings import epoch_us

FAST = settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
CTX = DeviceContext(id="rtls-1", family=Family.RTLS)
NOW = datetime(2026, 11, 23, 6, 0, tzinfo=UTC)


def _outcome(parse: Callable[[], list[Reading]]) -> tuple[str, Any]:
    try:
        return "ok", parse()
    except DriverError as exc:
        return "error", (exc.reason, exc.message)
    except Exception as exc:  # drivers.parse words these as schema errors: they must match too
        return "error", (type(exc).__name__, str(exc))


def _check(text: str) -> None:
    plain = _outcome(lambda: rtls.parse(CTX, "site/s/rtls/rtls-1/positions", text, NOW))
    checked = _outcome(lambda: rtls._checked(CTX, text, NOW))
    assert plain[0] == checked[0], (text, plain, checked)
    if plain[0] == "error":
        assert plain == checked
        return
    [fast], [slow] = plain[1], checked[1]
    assert isinstance(fast, PositionsReading) and isinstance(slow, PositionsReading)
    # the columns first, before anything builds the plain path's Position objects
    assert fast.positions.columns.same(slow.positions.columns)
    cf, cs = fast.positions.columns, slow.positions.columns
    assert [t.utcoffset() for t in cf.ts] == [t.utcoffset() for t in cs.ts]
    assert cf.ts_us.tolist() == [epoch_us(t) for t in cs.ts]
    assert fast == slow
    assert fast.model_dump_json() == slow.model_dump_json()
    for f, s in zip(fast.positions, slow.positions, strict=True):
        assert rtls._same(f, s)


def test_the_plain_path_is_on() -> None:
    assert rtls._PLAIN


def test_plain_models_have_the_contract_models_schema() -> None:
    def normal(schema: dict[str, Any]) -> Any:
        text = json.dumps(schema, sort_keys=True)
        for old, new in (("_PlainPosition", "RtlsPosition"), ("_PlainBatch", "RtlsBatchPayload")):
            text = text.replace(old, new)
        out = json.loads(text)
        out.pop("description", None)
        for d in out.get("$defs", {}).values():
            d.pop("description", None)
        return out

    assert normal(rtls._PLAIN_ADAPTER.json_schema()) == normal(RtlsBatchPayload.model_json_schema())


# -- generated payloads ----------------------------------------------------------------------------

wild_number = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-(10**7), 10**7),
    st.sampled_from([-0.0, 1e6, 1e6 + 1, -1e6, -1e6 - 1, 1e4, 1e4 + 0.5, 100, 100.5, 1.0000001, -1e-300]),
)
coordinate = st.one_of(st.floats(-1000, 1000), st.integers(-1000, 1000), st.floats(0, 1), wild_number)
near = NOW.timestamp()
raw_ts = st.one_of(
    st.none(),
    st.floats(near - 400, near + 400),
    st.integers(int(near) - 400, int(near) + 400),
    st.integers(-10, 10**11),
    st.sampled_from(["2026-11-23T06:00:01Z", "2026-11-23T06:09:00+00:00", "not a time", "2026-13-01T00:00:00Z", ""]),
    st.booleans(),
)
tag = st.one_of(
    st.from_regex(r"\AT-[0-9]{1,4}\Z"),
    st.from_regex(r"\AT-[0-9]{1,4}\Z"),
    st.sampled_from(["", "-bad", "x" * 65, "ok.tag_1", "é"]),
    st.integers(),
)
optional = st.sampled_from(["z", "q", "bat", "ts", "vendor"])


@st.composite
def wild_position(draw: st.DrawFn) -> dict[str, Any]:
    pos: dict[str, Any] = {"tag": draw(tag), "x": draw(coordinate), "y": draw(coordinate)}
    for key in draw(st.sets(optional)):
        if key == "ts":
            pos[key] = draw(raw_ts)
        else:
            pos[key] = draw(st.one_of(coordinate, st.floats(0, 1), st.none(), st.text(max_size=3)))
    if draw(st.integers(0, 9)) == 0:
        del pos[draw(st.sampled_from(["tag", "x", "y"]))]  # a required key missing
    return pos


metres = st.one_of(st.floats(-1000, 1000), st.integers(-1000, 1000))
GOOD_OPTIONAL = {
    "z": metres,
    "q": st.one_of(st.none(), st.floats(0, 1), st.sampled_from([0, 1])),
    "bat": st.one_of(st.none(), st.floats(0, 100), st.integers(0, 100)),
    "ts": st.one_of(st.none(), st.floats(near - 400, near + 400), st.integers(int(near) - 400, int(near) + 400)),
    "vendor": st.one_of(st.text(max_size=3), st.lists(st.integers(), max_size=2)),
}


@st.composite
def good_position(draw: st.DrawFn) -> dict[str, Any]:
    pos: dict[str, Any] = {"tag": draw(st.from_regex(r"\AT-[0-9]{1,4}\Z")), "x": draw(metres), "y": draw(metres)}
    for key in draw(st.sets(optional)):
        pos[key] = draw(GOOD_OPTIONAL[key])
    return pos


position = st.one_of(good_position(), good_position(), good_position(), wild_position())


@st.composite
def payload(draw: st.DrawFn) -> str:
    body: dict[str, Any] = {"positions": draw(st.lists(position, max_size=6))}
    if draw(st.integers(0, 3)):  # mostly a batch time within the skew window, so a position's own can differ
        body["ts"] = draw(st.one_of(st.floats(near - 250, near + 250), st.floats(near - 250, near + 250), raw_ts))
    if draw(st.booleans()):
        body["extra"] = draw(st.one_of(st.text(max_size=5), st.lists(st.integers(), max_size=3)))
    if draw(st.integers(0, 9)) == 0:
        body = body["positions"][0] if body["positions"] else {}  # a single position, no wrapper
    return json.dumps(body, ensure_ascii=draw(st.booleans()), indent=draw(st.sampled_from([None, 1])))


@FAST
@given(payload())
def test_generated_payloads_take_either_path_to_the_same_answer(text: str) -> None:
    _check(text)


@FAST
@given(payload(), st.data())
def test_damaged_payloads_take_either_path_to_the_same_answer(text: str, data: st.DataObject) -> None:
    """Characters cut, inserted or replaced anywhere: broken JSON, wrong types, odd escapes."""
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(0, len(text)))
        cut = data.draw(st.integers(0, 2))
        insert = data.draw(st.text(alphabet='{}[]",:\\ 0123456789.eE+-NaInfityu\ufeff\x00\x1f\ud7ff', max_size=3))
        text = text[:at] + insert + text[at + cut :]
    _check(text)


ONE = [{"tag": "T-1", "x": 1.5, "y": 2}]
GOOD = {"ts": "2026-11-23T06:00:00Z", "positions": ONE}


@pytest.mark.parametrize(
    "text",
    [
        json.dumps(GOOD),
        json.dumps(GOOD)[:-1] + ', "v": "\\ud800"}',  # a lone surrogate: Python's json takes it
        json.dumps(GOOD)[:-1] + ', "v": ' + "[" * 300 + "]" * 300 + "}",  # deep nesting
        json.dumps(GOOD)[:-1] + ', "v": "a\x01b"}',  # a raw control character
        json.dumps(GOOD)[:-1] + ', "v": NaN}',
        json.dumps(GOOD)[:-1] + ', "v": 1e999}',
        json.dumps(GOOD)[:-1] + ', "positions": 5}',  # a duplicate key: the last one counts
        '{"positions": 5, ' + json.dumps(GOOD)[1:],
        "\ufeff" + json.dumps(GOOD),
        json.dumps(GOOD) + " x",
        json.dumps(GOOD).replace('"positions"', '"\\u0070ositions"'),
        json.dumps({**GOOD, "positions": []}),
        json.dumps({**GOOD, "positions": ONE * 10_001}),
        json.dumps({"ts": "2026-11-23T06:00:00Z", "positions": [{"tag": "T-1", "x": 1, "y": 2, "ts": "yesterday"}]}),
        json.dumps({"ts": 1.0, "positions": [{"tag": "T-1", "x": 1, "y": 2, "ts": "2026-11-23T06:00:01Z"}]}),
        json.dumps({"tag": "T-1", "x": 1, "y": 2, "note": '"positions"'}),
        # a key the plain path finds absent from the text must be absent: escaped keys, keys
        # elsewhere (a top-level extra, a vendor field, a string value), a duplicated batch time
        '{"ts": 1.0, "positions": [{"tag": "T-1", "x": 1, "y": 2, "\\u0074s": "2026-11-23T06:00:01Z"}]}',
        '{"positions": [{"tag": "T-1", "x": 1, "y": 2, "\\u007a": 3.5, "b\\u0061t": 7, "\\u0071": 0.5}]}',
        '{"ts": 1.0, "z": 9, "positions": [{"tag": "T-1", "x": 1, "y": 2, "z": 3.5}]}',
        '{"ts": 1.0, "positions": [{"tag": "T-1", "x": 1, "y": 2, "vendor": {"ts": 5, "q": 1}}]}',
        '{"ts": 1.0, "positions": [{"tag": "T-1", "x": 1, "y": 2, "vendor": "q"}, {"tag": "T-2", "x": 1, "y": 2}]}',
        '{"ts": 1.0, "ts": 2.0, "positions": [{"tag": "T-1", "x": 1, "y": 2, "ts": 3.0}]}',
        '{"positions": [{"tag": "T-1", "x": 1, "y": 2, "bat": null, "q": null}, {"tag": "T-2", "x": 1, "y": 2}]}',
        "[]",
        "",
    ],
)
def test_edge_cases_take_either_path_to_the_same_answer(text: str) -> None:
    _check(text)


def test_a_batch_position_keeps_its_own_time_and_skew() -> None:
    own = (NOW - timedelta(seconds=2)).timestamp()
    far = (NOW - timedelta(hours=1)).timestamp()
    text = json.dumps(
        {"ts": own, "positions": [{"tag": "T-1", "x": 1, "y": 2, "ts": far}, {"tag": "T-2", "x": 1, "y": 2}]}
    )
    [reading] = drivers.parse(CTX, "site/s/rtls/rtls-1/positions", text.encode(), NOW)
    assert isinstance(reading, PositionsReading)
    assert reading.clock_skew and [p.ts for p in reading.positions] == [NOW, NOW - timedelta(seconds=2)]
    _check(text)
