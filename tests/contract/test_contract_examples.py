"""Every wire example in the shared CONTRACT.md (§2 device payloads, §3 uplink bodies) parses.

The examples are read from the contract file itself, so a contract edit that our types do not
follow fails here. The contract writes examples loosely (`…` for a value, `"a|b"` for
alternatives, `{"key", …}` for "has these keys"); `expand()` turns each into concrete JSON
documents, one per alternative.
"""

from __future__ import annotations

import itertools
import json
import re
from typing import Any

import pytest
from pydantic import BaseModel

from gridwatch import contract as c
from tests.conftest import SHARED

CONTRACT = SHARED / "CONTRACT.md"

SAMPLE: dict[str, Any] = {
    "ts": "2026-11-23T06:00:00.123Z",
    "first_seen": "2026-11-23T05:59:58.000Z",
    "last_seen": "2026-11-23T06:00:00.000Z",
    "event_id": "0196b6b0-7f00-7c2e-9a3b-1234567890ab",
    "alert_id": "0196b6b0-7f00-7c2e-9a3b-aaaaaaaaaaaa",
    "request_id": "r-0001",
    "grid": "w1-g1",
    "zone": "perim-north",
    "armed": True,
    "ok": True,
    "result": {},
    "data": {},
    "detail": {},
    "tags": {"tag": "T-0001"},
    "fields": {"x": 1.5},
    "device": "ir-n-03",
    "kind": "beam_restore",
    "id": "ir-n-03",
    "family": "perimeter_ir",
    "online": True,
    "battery": 80.0,
    "dead_letters": 0,
    "version": "0.1.0",
    "uptime_s": 12.5,
    "config_hash": "3f2a",
    "card": "12345678",
    "lat": 31.23,
    "lon": 121.47,
    "acc_m": 8.0,
    "site": "demo-prison",
    "edge": "edge-w1",
    "area": "ward-1",
    "snapshot": None,
}

MODELS: list[tuple[set[str], type[BaseModel]]] = [
    ({"alert_id"}, c.AlertTransition),
    ({"detector"}, c.PerimeterPayload),
    ({"door"}, c.AccessPayload),
    ({"positions"}, c.RtlsBatchPayload),
    ({"band", "event"}, c.WristbandEventPayload),
    ({"band"}, c.WristbandTelemetryPayload),
    ({"camera"}, c.CameraEventPayload),
    ({"uptime_s"}, c.Heartbeat),
    ({"state"}, c.HeartbeatWill),
    ({"devices"}, c.DevicesBody),
    ({"batch", "m"}, c.TelemetryBody),
    ({"batch"}, c.EventsBody),
    ({"request_id", "armed"}, c.ArmCmd),
    ({"request_id", "grid"}, c.RollcallCmd),
    ({"request_id", "ok"}, c.CmdResult),
]


def examples() -> list[str]:
    """Inline `{…}` code spans of §2–§3 and the fenced JSON example of §3.1."""
    text = CONTRACT.read_text(encoding="utf-8")
    body = text[text.index("## 2.") : text.index("## 4.")]
    spans = [m.group(1) for m in re.finditer(r"`(\{\".*?\})`", body)]
    fenced = re.findall(r"```json\n(.*?)```", body, re.S)
    return spans + fenced


def _fill_keys(text: str) -> str:
    # {"a","b":…} → {"a":<a>,"b":…}: a key standing alone gets a sample value
    return re.sub(
        r'(?<=[{,])(\s*)"(\w+)"(?=\s*[,}])',
        lambda m: f'{m.group(1)}"{m.group(2)}":{json.dumps(SAMPLE.get(m.group(2), "x"))}',
        text,
    )


def _fill_ellipses(text: str) -> str:
    text = text.replace("{…}", "{}").replace(", …]", "]").replace("[…]", "[]")
    text = re.sub(r'"(\w+)":\s*…', lambda m: f'"{m.group(1)}":{json.dumps(SAMPLE.get(m.group(1), "x"))}', text)
    text = re.sub(r'"(\w+)":\s*"…"', lambda m: f'"{m.group(1)}":{json.dumps(SAMPLE.get(m.group(1), "x"))}', text)
    text = re.sub(r'"(\w+)":\s*n\b', r'"\1":3', text)
    return text.replace('"<sha256>|null"', "null")


def expand(example: str) -> list[dict[str, Any]]:
    """Concrete documents for one contract example, one per `"a|b|c"` alternative set."""
    text = _fill_ellipses(_fill_keys(example))
    choices = re.findall(r'"([a-z_]+(?:\|[a-z_]+)+)"', text)
    docs = []
    width = max((len(ch.split("|")) for ch in choices), default=1)
    for i in range(width):
        variant = text
        for ch in choices:
            options = ch.split("|")
            variant = variant.replace(f'"{ch}"', json.dumps(options[min(i, len(options) - 1)]), 1)
        docs.append(json.loads(variant))
    return docs


def model_for(doc: dict[str, Any]) -> type[BaseModel]:
    keys = set(doc) | {k for v in doc.values() if isinstance(v, list) for i in v if isinstance(i, dict) for k in i}
    for required, model in MODELS:
        if required <= keys:
            return model
    raise AssertionError(f"no contract model for example with keys {sorted(keys)}")


def test_contract_file_is_beside_the_repo() -> None:
    assert CONTRACT.exists(), f"expected the shared contract at {CONTRACT}"
    assert len(examples()) >= 14


@pytest.mark.parametrize("example", examples())
def test_every_contract_example_parses(example: str) -> None:
    for doc in expand(example):
        model = model_for(doc)
        if model is c.HeartbeatWill and "state" in doc and doc["state"] != "offline":
            continue  # `"state":"active|cleared"` belongs to the alert example, matched above
        parsed = model.model_validate(doc)
        assert parsed is not None


def test_alternatives_are_all_tried() -> None:
    docs = expand(next(e for e in examples() if '"detector"' in e))
    assert [d["state"] for d in docs] == ["alarm", "normal", "tamper", "fault", "low_battery"]


def test_alert_example_round_trips_through_the_uplink_parser() -> None:
    fenced = next(e for e in examples() if "alert_id" in e)
    doc = expand(fenced)[0]
    parsed = c.parse_uplink("alerts", json.dumps(doc))
    assert isinstance(parsed, c.AlertTransition)
    assert c.parse_uplink("alerts", parsed.model_dump_json()) == parsed


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ({"ts": "2026-11-23T06:00:00", "detector": "ir-1", "state": "alarm"}, None),  # ts raw at this layer
        ({"detector": "ir-1", "state": "smoke"}, "state"),
        ({"detector": "bad id!", "state": "alarm"}, "detector"),
        ({"detector": "ir-1", "state": "alarm", "beam": 0}, "beam"),
        ({"detector": "ir-1", "state": "alarm", "beam": True}, "beam"),
    ],
)
def test_perimeter_payload_bounds(body: dict[str, Any], problem: str | None) -> None:
    if problem is None:
        c.PerimeterPayload.model_validate(body)
    else:
        with pytest.raises(ValueError, match=problem):
            c.PerimeterPayload.model_validate(body)


def test_nan_and_out_of_range_values_are_rejected() -> None:
    with pytest.raises(ValueError):
        c.RtlsBatchPayload.model_validate_json('{"positions":[{"tag":"T-1","x":NaN,"y":1}]}')
    with pytest.raises(ValueError):
        c.WristbandTelemetryPayload.model_validate({"band": "W-1", "hr": -5})


def test_uuid7_is_version_7_and_sorts_by_time() -> None:
    ids = [c.uuid7(now_ms=1_800_000_000_000 + i) for i in range(50)]
    assert all(u.version == 7 and u.variant == "specified in RFC 4122" for u in ids)
    assert ids == sorted(ids)
    assert len({c.new_event_id() for _ in range(10_000)}) == 10_000


def test_event_id_must_be_uuid7() -> None:
    doc = expand(next(e for e in examples() if "alert_id" in e))[0]
    doc["event_id"] = "6f1c1e38-7a0c-4c6b-9d0b-8f3a3e2b1c00"  # a v4
    with pytest.raises(ValueError, match="UUID v7"):
        c.AlertTransition.model_validate(doc)


@pytest.mark.parametrize(
    ("raw", "ok"),
    [
        ("2026-11-23T06:00:00.123Z", True),
        (1795500000, True),
        (1795500000.5, True),
        ("2026-11-23T06:00:00", False),
        ("yesterday", False),
        (True, False),
        (float("nan"), False),
        (-1, False),
    ],
)
def test_parse_ts(raw: Any, ok: bool) -> None:
    if ok:
        assert c.parse_ts(raw).tzinfo is not None
    else:
        with pytest.raises(ValueError):
            c.parse_ts(raw)


def test_uplink_topics_round_trip() -> None:
    topic = c.uplink_topic("demo-prison", "edge-w1", c.UplinkKind.SNAPSHOTS, "ab" * 32)
    assert topic == f"gridwatch/v1/demo-prison/edge-w1/snapshots/{'ab' * 32}"
    assert c.split_uplink_topic(topic) == ("demo-prison", "edge-w1", "snapshots", ("ab" * 32,))
    assert c.split_uplink_topic("site/x/perimeter/ir/event") is None


def test_models_are_frozen_and_forbid_unknown_keys() -> None:
    body = c.CmdResult(request_id="r", ok=True)
    with pytest.raises(ValueError):
        c.CmdResult.model_validate({"request_id": "r", "ok": True, "surprise": 1})
    with pytest.raises(ValueError):
        body.ok = False  # type: ignore[misc]
    assert list(itertools.islice(c.Level, 3)) == [c.Level.LOW, c.Level.MEDIUM, c.Level.HIGH]
    assert c.Level.max(c.Level.LOW, c.Level.HIGH) is c.Level.HIGH
