"""Weekly schedules: windows, day ranges, midnight crossing, evaluated in the site's timezone."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from gridwatch.config.schedule import Schedule

TZ = "Asia/Shanghai"  # UTC+8, no DST


def local(day: int, hh: int, mm: int = 0) -> datetime:
    """2026-11-23 is a Monday; `day` 0 = that Monday, local Shanghai time, returned in UTC."""
    return datetime(2026, 11, 23 + day, hh, mm, tzinfo=ZoneInfo(TZ)).astimezone(UTC)


@pytest.mark.parametrize(
    ("spec", "when", "active"),
    [
        ("always", local(0, 3), True),
        ("never", local(0, 3), False),
        ("08:00-17:00", local(2, 8, 0), True),
        ("08:00-17:00", local(2, 17, 0), False),  # end is exclusive
        ("mon-fri 08:00-17:00", local(5, 9), False),  # Saturday
        ("sat,sun 00:00-24:00", local(6, 23, 59), True),
        ("22:00-06:30", local(0, 23), True),
        ("22:00-06:30", local(1, 6, 29), True),
        ("22:00-06:30", local(1, 6, 30), False),
        ("fri 22:00-06:00", local(5, 2), True),  # Saturday 02:00 belongs to Friday's night
        ("fri 22:00-06:00", local(0, 2), False),  # Monday 02:00: Sunday night is not listed
        ("sun-tue 10:00-11:00", local(6, 10, 30), True),  # wrap-around range
        ("sun-tue 10:00-11:00", local(2, 10, 30), False),  # Wednesday
    ],
)
def test_windows(spec: str, when: datetime, active: bool) -> None:
    assert Schedule((spec,)).active(when, TZ) is active


def test_list_of_windows_is_a_union() -> None:
    lock_in = Schedule(("21:00-06:30", "12:00-13:30"))
    assert lock_in.active(local(0, 12, 15), TZ)
    assert lock_in.active(local(0, 22), TZ)
    assert not lock_in.active(local(0, 15), TZ)


def test_timezone_matters() -> None:
    night = Schedule(("22:00-06:00",))
    when = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)  # 23:00 in Shanghai, 15:00 in London
    assert night.active(when, "Asia/Shanghai")
    assert not night.active(when, "Europe/London")


@pytest.mark.parametrize("bad", ["8-17", "mon-fry 08:00-17:00", "25:00-26:00", "08:00-08:00", "08:60-09:00", "daily"])
def test_bad_specs_say_what_to_write(bad: str) -> None:
    with pytest.raises(ValueError, match=r"schedule|day|time"):
        Schedule((bad,))
