"""Rule engine tests: helpers shared by the test modules (explicit datetimes, no sleeping)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from edge.rules import RuleEngine
from gridwatch.config import SiteConfig, load_site
from gridwatch.contract import AlertTransition, PerimeterReading

DEMO_SITE = Path(__file__).resolve().parents[2] / "configs" / "demo-site.yaml"
TZ = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 11, 23, 10, 0, tzinfo=TZ)
"""Monday 10:00 at the demo site: no lock-in, the west fence disarmed (armed 18:00-07:00)."""


@cache
def demo_site() -> SiteConfig:
    return load_site(DEMO_SITE, env={})


def demo_engine(edge: str = "edge-w1", **kw: Any) -> RuleEngine:
    return RuleEngine(demo_site(), edge, **kw)


def at(seconds: float, base: datetime = T0) -> datetime:
    return base + timedelta(seconds=seconds)


def beam(detector: str, when: datetime, beam_no: int = 1, state: str = "alarm") -> PerimeterReading:
    return PerimeterReading.model_validate(
        {"device": detector, "ts": when, "detector": detector, "beam": beam_no, "state": state}
    )


def tick_until(engine: RuleEngine, start: datetime, end: datetime, step: float = 1.0) -> list[AlertTransition]:
    """on_tick every `step` seconds from start to end inclusive; all transitions in order."""
    out: list[AlertTransition] = []
    now = start
    while now <= end:
        out.extend(engine.on_tick(now))
        now += timedelta(seconds=step)
    return out


def of(transitions: Iterable[AlertTransition], rule: str, state: str | None = None) -> list[AlertTransition]:
    return [t for t in transitions if t.rule == rule and (state is None or t.state == state)]


def small_site(**sections: Any) -> SiteConfig:
    """A hand-built site with one edge serving everything listed."""
    data: dict[str, Any] = {"site": {"id": "s1", "name": "Test", "timezone": "Asia/Shanghai"}}
    data.update(sections)
    zones = [z["id"] for z in data.get("zones", [])]
    devices = [d["id"] for d in data.get("devices", [])]
    areas = [a["id"] for a in data.get("areas", [])]
    data.setdefault("edges", [{"id": "e1", "zones": zones, "devices": devices, "areas": areas}])
    return SiteConfig.model_validate(data)
