"""Scenario files: a timeline of hardware events and the alerts the system must answer with.

A tester writes one YAML file per story. Each step happens `at` a time from the start of the
scenario and does exactly one thing (a beam breaks, a door is forced, an inmate walks into a
staff corridor, a camera is covered, …); it may say which alerts must follow (`expect`) and how
fast. `gridwatch sim run` plays the file; `gridwatch sim verify` also checks the expectations
against central and reports the latency of each.

```yaml
name: north fence intrusion
steps:
  - at: 2s
    perimeter: {detector: ir-n-02, beam: 1, state: alarm}
    expect: [{rule: perimeter.intrusion, level: medium, zone: perim-north, within_s: 2}]
  - at: 3.5s
    perimeter: {detector: ir-n-03, state: alarm}
    expect: [{rule: perimeter.intrusion, level: high}]
```
Errors are reported like config errors: `FILE:LINE: steps[1].perimeter.detector: …`.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from gridwatch.config import ConfigError, SiteConfig
from gridwatch.config.loader import Problem, SourceMap, _pydantic_problems, parse_yaml
from gridwatch.contract.enums import AccessEvent, Direction, Family, Level, PerimeterState, WristbandEvent
from gridwatch.rules import RULES

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|min|h)?\s*$")
_UNIT_S = {"ms": 0.001, "s": 1.0, None: 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}


def parse_duration(value: Any) -> float:
    """`5`, `2.5s`, `1500ms`, `2m`, `1h` → seconds."""
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or a string like '2.5s', '2m'")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return float(value)
    if isinstance(value, str) and (m := _DURATION.match(value)):
        return float(m.group(1)) * _UNIT_S[m.group(2)]
    raise ValueError(f"not a duration: {value!r} (use seconds, or '2.5s', '1500ms', '2m')")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PerimeterAction(_Model):
    detector: str
    beam: int = Field(default=1, ge=1, le=64)
    state: PerimeterState = PerimeterState.ALARM


class AccessAction(_Model):
    door: str
    event: AccessEvent
    card: str | None = None
    direction: Direction | None = None
    wiegand: bool = Field(default=False, description="Send the card as raw Wiegand-26 bits")


class MoveAction(_Model):
    person: str
    to: str | tuple[float, float] = Field(description="A zone or grid id, or [x, y] in site metres")
    speed_mps: float = Field(default=1.4, gt=0, le=10)


class PersonAction(_Model):
    person: str


class TagSilentAction(_Model):
    person: str
    seconds: float = Field(gt=0, le=86_400)


class WristbandAction(_Model):
    band: str
    event: WristbandEvent


class VitalsAction(_Model):
    band: str
    hr: float | None = Field(default=None, ge=0, le=300)
    temp: float | None = Field(default=None, ge=25, le=45)
    bat: float | None = Field(default=None, ge=0, le=100)
    seconds: float = Field(default=60, gt=0, le=86_400, description="How long the override lasts")


class CameraAction(_Model):
    camera: str
    event: Literal["intruder", "cover", "blind", "defocus", "move", "stop"]
    seconds: float = Field(default=5, gt=0, le=3600)


class DeviceAction(_Model):
    id: str
    online: bool = False
    crash: bool = Field(
        default=False,
        description="Die without a word: the device's broker session ends abruptly and the broker publishes its will",
    )
    silent_s: float | None = Field(default=None, gt=0, le=86_400, description="Also stop all traffic this long")

    @model_validator(mode="after")
    def _crash_is_offline(self) -> DeviceAction:
        if self.crash and self.online:
            raise ValueError("a device cannot crash and be online: drop `online: true` or `crash: true`")
        return self


class GatherAction(_Model):
    zone: str = Field(description="Zone or grid where inmates gather")
    count: int = Field(default=6, ge=2, le=200)
    seconds: float = Field(default=45, gt=0, le=86_400)


class Expect(_Model):
    rule: str | None = Field(default=None, description="Required, except in expect_none (any rule)")
    level: Level | None = None
    zone: str | None = None
    subject: str | None = Field(default=None, description="Subject id (person, device, door, zone)")
    within_s: float = Field(default=5.0, gt=0, le=3600)
    absent: bool = Field(default=False, description="The alert must NOT appear within within_s")

    @field_validator("rule")
    @classmethod
    def _known_rule(cls, value: str | None) -> str | None:
        if value is not None and value not in RULES:
            hint = difflib.get_close_matches(value, RULES, n=1)
            raise ValueError(f"unknown rule {value!r}" + (f" (did you mean {hint[0]!r}?)" if hint else ""))
        return value


class FaultAction(_Model):
    """Misbehave on purpose for a while: what bad hardware and bad networks do."""

    device: str | None = Field(default=None, description="Only this device's messages; default every device")
    seconds: float = Field(default=10, gt=0, le=86_400)
    malformed_rate: float = Field(default=0.0, ge=0, le=1, description="Share of messages replaced by garbage")
    duplicate_rate: float = Field(default=0.0, ge=0, le=1, description="Share of messages sent twice")
    reorder_rate: float = Field(default=0.0, ge=0, le=1, description="Share held back and sent after the next")
    clock_skew_s: float = Field(default=0.0, ge=-86_400, le=86_400, description="Added to device timestamps")


class BrokerDropAction(_Model):
    """The simulator's own link to the device broker drops (messages queue, then flow again)."""

    seconds: float = Field(default=3, gt=0, le=3600)


ACTIONS = (
    "perimeter", "access", "move", "release", "tag_silent", "wristband", "vitals", "camera", "device", "gather",
    "faults", "broker_drop",
)  # fmt: skip


class Step(_Model):
    at: Annotated[float, Field(description="Seconds from the start of the scenario")]
    note: str = ""
    perimeter: PerimeterAction | None = None
    access: AccessAction | None = None
    move: MoveAction | None = None
    release: PersonAction | None = None
    tag_silent: TagSilentAction | None = None
    wristband: WristbandAction | None = None
    vitals: VitalsAction | None = None
    camera: CameraAction | None = None
    device: DeviceAction | None = None
    gather: GatherAction | None = None
    faults: FaultAction | None = None
    broker_drop: BrokerDropAction | None = None
    expect: list[Expect] = Field(default_factory=list)
    expect_none: list[Expect] = Field(
        default_factory=list, description="Alerts that must NOT appear within within_s (rule optional)"
    )

    @field_validator("at", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> float:
        return parse_duration(value)

    @model_validator(mode="after")
    def _one_action(self) -> Step:
        given = [name for name in ACTIONS if getattr(self, name) is not None]
        if len(given) > 1 or (not given and not self.expect_none):
            raise ValueError(f"a step does exactly one of {', '.join(ACTIONS)} (this one has {len(given)})")
        if any(e.rule is None for e in self.expect):
            raise ValueError("every expect entry names its rule")
        return self

    @property
    def expectations(self) -> list[Expect]:
        """`expect` and `expect_none` together; the latter marked absent."""
        return [*self.expect, *(e.model_copy(update={"absent": True}) for e in self.expect_none)]

    @property
    def action(self) -> tuple[str, BaseModel | None]:
        """(name, action); ("watch", None) for a step that only declares an expect_none window."""
        for name in ACTIONS:
            value = getattr(self, name)
            if value is not None:
                return name, value
        return "watch", None


class Background(_Model):
    """The steady traffic of a living facility, between the scripted steps."""

    positions_hz: float = Field(default=1.0, ge=0, le=20, description="RTLS batches per second per gateway")
    vitals_s: float = Field(default=10.0, ge=0, le=3600, description="Wristband telemetry period (0 = none)")
    keepalive: bool = Field(default=True, description="Devices republish `online` at half their expected interval")
    access_rate_hz: float = Field(
        default=0.0, ge=0, le=10_000, description="Ordinary card-in passages per second, at random doors (granted)"
    )
    seed: int = 7


class Scenario(_Model):
    name: str
    description: str = ""
    background: Background = Field(default_factory=Background)
    duration_s: float | None = Field(default=None, description="Length of one play; default last step + 30 s")
    steps: list[Step] = Field(default_factory=list)

    @field_validator("duration_s", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> float | None:
        return None if value is None else parse_duration(value)

    @property
    def length_s(self) -> float:
        if self.duration_s is not None:
            return self.duration_s
        return max((s.at for s in self.steps), default=0.0) + 30.0

    def ordered_steps(self) -> list[Step]:
        return [step for _i, step in self.timeline()]

    def timeline(self) -> list[tuple[int, Step]]:
        """(index in `steps`, step) in the order they play: by time, file order among equals."""
        return sorted(enumerate(self.steps), key=lambda pair: pair[1].at)


def _did_you_mean(value: str, known: list[str]) -> str:
    hint = difflib.get_close_matches(value, known, n=1, cutoff=0.5)
    return f" (did you mean {hint[0]!r}?)" if hint else ""


def check_against_site(scenario: Scenario, site: SiteConfig, source: SourceMap) -> list[Problem]:
    """Every id a step names must exist in the site, with the right family."""
    problems: list[Problem] = []
    detectors = sorted(
        {d.id for d in site.devices if d.family == Family.PERIMETER_IR and d.format == "json"}
        | {m.detector for d in site.devices for m in d.contact_id}
    )
    doors = sorted({d.door for d in site.devices if d.family == Family.ACCESS and d.door})
    people = sorted(p.id for p in site.people)
    tagged = sorted(p.id for p in site.people if p.tag)
    bands = sorted(p.band for p in site.people if p.band)
    cameras = sorted(d.id for d in site.devices if d.family == Family.CAMERA)
    devices = sorted(d.id for d in site.devices)
    places = sorted([z.id for z in site.zones] + list(site.grid_index()))

    def need(value: str, known: list[str], path: tuple[str | int, ...], what: str) -> None:
        if value not in known:
            problems.append(source.problem(path, f"unknown {what} {value!r}{_did_you_mean(value, known)}"))

    for i, step in enumerate(scenario.steps):
        name, action = step.action
        base: tuple[str | int, ...] = ("steps", i, name)
        if isinstance(action, PerimeterAction):
            need(action.detector, detectors, (*base, "detector"), "perimeter detector")
        elif isinstance(action, AccessAction):
            need(action.door, doors, (*base, "door"), "door with an access controller")
        elif isinstance(action, MoveAction):
            need(action.person, tagged, (*base, "person"), "person with a tag")
            if isinstance(action.to, str):
                need(action.to, places, (*base, "to"), "zone or grid")
        elif isinstance(action, PersonAction | TagSilentAction):
            need(action.person, people, (*base, "person"), "person")
        elif isinstance(action, WristbandAction | VitalsAction):
            need(action.band, bands, (*base, "band"), "wristband")
        elif isinstance(action, CameraAction):
            need(action.camera, cameras, (*base, "camera"), "camera")
        elif isinstance(action, DeviceAction):
            need(action.id, devices, (*base, "id"), "device")
        elif isinstance(action, GatherAction):
            need(action.zone, places, (*base, "zone"), "zone or grid")
        elif isinstance(action, FaultAction) and action.device is not None:
            need(action.device, devices, (*base, "device"), "device")
        for key in ("expect", "expect_none"):
            for j, exp in enumerate(getattr(step, key)):
                if exp.zone is not None:
                    need(exp.zone, sorted(z.id for z in site.zones), ("steps", i, key, j, "zone"), "zone")
    return problems


def load_scenario(path: str | Path, site: SiteConfig | None = None) -> Scenario:
    """Read and check a scenario file; raises ConfigError with every problem, located by line."""
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([Problem(name, 0, "", f"cannot read the scenario: {exc}")]) from None
    data, source, problems = parse_yaml(text, name, env={})
    if data is not None and not isinstance(data, dict):
        problems.append(Problem(name, 1, "", "a scenario is a mapping with keys name, steps, …"))
        data = None
    if data is None:
        raise ConfigError(problems or [Problem(name, 1, "", "the file is empty")])
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(problems + _pydantic_problems(exc, source)) from None
    if site is not None:
        problems += check_against_site(scenario, site, source)
    if problems:
        raise ConfigError(sorted(problems, key=lambda p: p.line))
    return scenario
