"""Weekly schedules written as short strings, evaluated in the site's timezone.

Grammar (one window per string; a schedule is one string or a list of them):
    always | never | [DAYS ]HH:MM-HH:MM
    DAYS = day or range, comma-separated: mon-fri, sat,sun, mon,wed-fri
A window whose end is not after its start crosses midnight and belongs to its start day
("22:00-06:30" on mon covers mon 22:00 to tue 06:30). 24:00 is allowed as an end.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import GetCoreSchemaHandler
from pydantic_core import core_schema

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_WINDOW = re.compile(r"^(?:(?P<days>[a-z,\-]+)\s+)?(?P<start>\d{1,2}:\d{2})-(?P<end>\d{1,2}:\d{2})$")


@dataclass(frozen=True, slots=True)
class Window:
    days: frozenset[int]  # 0 = Monday
    start_min: int
    end_min: int  # may be <= start_min: crosses midnight

    def contains(self, weekday: int, minute: int) -> bool:
        if self.start_min < self.end_min:
            return weekday in self.days and self.start_min <= minute < self.end_min
        # crosses midnight: the part after the start on a listed day, or before the end the day after
        return (weekday in self.days and minute >= self.start_min) or (
            (weekday - 1) % 7 in self.days and minute < self.end_min
        )


def _minutes(text: str, *, allow_24: bool) -> int:
    hours, minutes = (int(p) for p in text.split(":"))
    if minutes > 59 or hours > 24 or (hours == 24 and (minutes or not allow_24)):
        raise ValueError(f"{text!r} is not a time of day")
    return hours * 60 + minutes


def _days(text: str) -> frozenset[int]:
    out: set[int] = set()
    for part in text.split(","):
        ends = part.split("-")
        if len(ends) > 2 or any(e not in DAYS for e in ends):
            raise ValueError(f"{part!r} is not a day or day range (use mon..sun, e.g. 'mon-fri')")
        first, last = DAYS.index(ends[0]), DAYS.index(ends[-1])
        out.update(DAYS.index(DAYS[(first + i) % 7]) for i in range((last - first) % 7 + 1))
    return frozenset(out)


def parse_window(text: str) -> Window | None:
    """One window; None for 'never'. Raises ValueError with a message a person can act on."""
    spec = text.strip().lower()
    if spec == "always":
        return Window(frozenset(range(7)), 0, 24 * 60)
    if spec == "never":
        return None
    match = _WINDOW.match(spec)
    if not match:
        raise ValueError(
            f"schedule {text!r} does not parse; write e.g. 'mon-fri 08:00-17:30', '22:00-06:00' or 'always'"
        )
    days = _days(match["days"]) if match["days"] else frozenset(range(7))
    start = _minutes(match["start"], allow_24=False)
    end = _minutes(match["end"], allow_24=True)
    if start == end:
        raise ValueError(f"schedule {text!r} is empty (start equals end)")
    return Window(days, start, end)


class Schedule:
    """A set of weekly windows; `active(now, tz)` says whether `now` falls in one."""

    __slots__ = ("source", "windows")

    def __init__(self, source: tuple[str, ...]) -> None:
        self.source = source
        self.windows = tuple(w for w in (parse_window(s) for s in source) if w is not None)

    @classmethod
    def always(cls) -> Schedule:
        return cls(("always",))

    @classmethod
    def never(cls) -> Schedule:
        return cls(("never",))

    def active(self, when: datetime, tz: ZoneInfo | str) -> bool:
        local = when.astimezone(ZoneInfo(tz) if isinstance(tz, str) else tz)
        minute = local.hour * 60 + local.minute
        return any(w.contains(local.weekday(), minute) for w in self.windows)

    @property
    def is_never(self) -> bool:
        return not self.windows

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Schedule) and other.windows == self.windows

    def __hash__(self) -> int:
        return hash(self.windows)

    def __repr__(self) -> str:
        return f"Schedule({list(self.source)!r})"

    @classmethod
    def _validate(cls, value: Any) -> Schedule:
        if isinstance(value, Schedule):
            return value
        if isinstance(value, str):
            return cls((value,))
        if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
            return cls(tuple(value)) if value else cls.never()
        raise ValueError("a schedule is a string like 'mon-fri 08:00-17:00' or a list of them")

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(
            cls._validate,
            serialization=core_schema.plain_serializer_function_ser_schema(lambda s: list(s.source)),
            json_schema_input_schema=core_schema.union_schema(
                [core_schema.str_schema(), core_schema.list_schema(core_schema.str_schema())]
            ),
        )
