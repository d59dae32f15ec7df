"""The dead-letter store keeps the newest letters, counts every one and says which are first."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest

from edge.deadletter import MAX_KEPT_PAYLOAD, DeadLetterStore

T0 = datetime(2026, 11, 23, 6, 0, tzinfo=UTC)


def _add(store: DeadLetterStore, device: str, reason: str, payload: bytes = b"x", n: int = 1) -> list[bool]:
    return [
        store.add(
            device=device,
            topic=f"site/s/perimeter/{device}/event",
            payload=payload,
            reason=reason,
            message="bad",
            ts=T0,
        )
        for _ in range(n)
    ]


def test_ring_keeps_only_the_newest_but_counts_all() -> None:
    store = DeadLetterStore(capacity=10)
    for i in range(25):
        store.add(device="ir-1", topic="t", payload=str(i).encode(), reason="not_json", message=str(i), ts=T0)
    assert len(store) == 10
    assert store.total == 25
    assert store.count("ir-1") == 25
    newest = store.recent(3)
    assert [d.payload for d in newest] == [b"24", b"23", b"22"]


def test_first_of_each_device_and_reason_is_reported_once() -> None:
    store = DeadLetterStore()
    assert _add(store, "ghost", "unknown_device", n=3) == [True, False, False]
    assert _add(store, "ghost", "not_json") == [True]
    assert _add(store, "other", "unknown_device") == [True]
    assert store.counts() == {("ghost", "unknown_device"): 3, ("ghost", "not_json"): 1, ("other", "unknown_device"): 1}
    assert store.count("ghost", "unknown_device") == 3


def test_summary_carries_payload_as_base64_and_totals_by_reason() -> None:
    store = DeadLetterStore()
    _add(store, "ir-1", "not_json", payload=b"\xff\x00garbage", n=2)
    _add(store, "ir-2", "schema")
    summary = store.summary(last=2)
    assert summary["total"] == 3
    assert summary["by_reason"] == {"not_json": 2, "schema": 1}
    assert len(summary["last"]) == 2
    assert summary["last"][0]["device"] == "ir-2"
    assert base64.b64decode(summary["last"][1]["payload_b64"]) == b"\xff\x00garbage"
    assert summary["last"][1]["topic"] == "site/s/perimeter/ir-1/event"
    assert summary["last"][1]["ts"] == "2026-11-23T06:00:00.000Z"


def test_huge_payload_is_kept_truncated_with_its_size() -> None:
    store = DeadLetterStore()
    _add(store, "ir-1", "too_large", payload=b"a" * (MAX_KEPT_PAYLOAD * 3))
    letter = store.recent(1)[0]
    assert len(letter.payload) == MAX_KEPT_PAYLOAD
    assert letter.to_json()["truncated"] is True
    assert letter.to_json()["size"] == MAX_KEPT_PAYLOAD * 3


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError):
        DeadLetterStore(capacity=0)
