"""Bounded dead-letter store: device messages the edge could not use, kept for the status page.

Bad input never stops the edge (contract §2): each rejected message is counted per
(device, reason) for ever, and the last `capacity` of them are kept with topic, bytes and reason.
"""

from __future__ import annotations

import base64
from collections import Counter, deque
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gridwatch.contract import format_ts

UNKNOWN_DEVICE = "unknown_device"
DRIVER_BUG = "driver_error"
# a garbage flood of 1 MB messages must not hold 1 GB of memory: keep the head of each payload
MAX_KEPT_PAYLOAD = 4096


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One rejected device message."""

    ts: datetime
    device: str
    topic: str
    payload: bytes
    size: int
    reason: str
    message: str

    def to_json(self) -> dict[str, Any]:
        return {
            "ts": format_ts(self.ts),
            "device": self.device,
            "topic": self.topic,
            "payload_b64": base64.b64encode(self.payload).decode("ascii"),
            "size": self.size,
            "truncated": self.size > len(self.payload),
            "reason": self.reason,
            "message": self.message,
        }


class DeadLetterStore:
    """The last `capacity` dead letters plus counts per (device, reason) since start."""

    def __init__(self, capacity: int = 1000) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self._ring: deque[DeadLetter] = deque(maxlen=capacity)
        self._counts: Counter[tuple[str, str]] = Counter()
        self._per_device: Counter[str] = Counter()

    def add(self, *, device: str, topic: str, payload: bytes, reason: str, message: str, ts: datetime) -> bool:
        """Record one dead letter; True when it is the first of this (device, reason)."""
        key = (device, reason)
        first = key not in self._counts
        self._counts[key] += 1
        self._per_device[device] += 1
        self._ring.append(
            DeadLetter(
                ts=ts,
                device=device,
                topic=topic,
                payload=bytes(payload[:MAX_KEPT_PAYLOAD]),
                size=len(payload),
                reason=reason,
                message=message[:500],
            )
        )
        return first

    @property
    def total(self) -> int:
        return sum(self._counts.values())

    def count(self, device: str, reason: str | None = None) -> int:
        """Dead letters of one device (of one reason, if given) since start."""
        if reason is None:
            return self._per_device[device]
        return self._counts[(device, reason)]

    def counts(self) -> dict[tuple[str, str], int]:
        return dict(self._counts)

    def recent(self, n: int = 50) -> list[DeadLetter]:
        """The newest `n` dead letters, newest first."""
        if n <= 0:
            return []
        out = list(self._ring)[-n:]
        out.reverse()
        return out

    def __len__(self) -> int:
        return len(self._ring)

    def summary(self, last: int = 50) -> dict[str, Any]:
        """JSON for /status: totals, counts per device and reason, and the newest `last` letters."""
        by_reason: Counter[str] = Counter()
        for (_device, reason), n in self._counts.items():
            by_reason[reason] += n
        return {
            "total": self.total,
            "kept": len(self._ring),
            "by_reason": dict(sorted(by_reason.items())),
            "by_device": [
                {"device": device, "reason": reason, "count": n} for (device, reason), n in sorted(self._counts.items())
            ],
            "last": [letter.to_json() for letter in self.recent(last)],
        }
