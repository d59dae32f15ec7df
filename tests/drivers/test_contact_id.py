"""Contact ID (SIA DC-05) text and 16-digit messages from an alarm panel (contract §2.2)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

import drivers
from drivers import DeviceContext, DriverError
from gridwatch.contract import Family, PerimeterReading, PerimeterState

NOW = datetime(2026, 11, 23, 6, 0, 0, tzinfo=UTC)
PANEL = DeviceContext(
    id="panel-sw",
    family=Family.PERIMETER_IR,
    format="contact_id",
    contact_id={("1234", 15): ("ir-s-01", 2), ("1234", 1): ("ir-s-02", 1)},
)
TOPIC = "site/s/perimeter/panel-sw/event"


def value(digit: str) -> int:
    """Digit values of the check-digit rule, written out independently of the driver."""
    return {"0": 10, "B": 11, "C": 12, "D": 13, "E": 14, "F": 15}.get(digit) or int(digit)


def with_check_digit(digits15: str) -> str:
    for candidate in "1234567890BCDEF":
        if (sum(value(d) for d in digits15) + value(candidate)) % 15 == 0:
            return digits15 + candidate
    raise AssertionError("no check digit")


def parse_one(text: str) -> PerimeterReading:
    (reading,) = drivers.parse(PANEL, TOPIC, text.encode(), NOW)
    assert isinstance(reading, PerimeterReading)
    return reading


def test_contract_text_example_maps_account_and_zone_to_detector_and_beam() -> None:
    assert parse_one("1234 18 1130 01 015") == PerimeterReading(
        device="panel-sw", ts=NOW, detector="ir-s-01", beam=2, state=PerimeterState.ALARM
    )


def test_contract_check_digit_example_is_accepted() -> None:
    assert with_check_digit("123418113001015") == "123418113001015E"
    assert parse_one("123418113001015E").state is PerimeterState.ALARM


@pytest.mark.parametrize("wrong", "123456789BCDF")
def test_every_wrong_check_digit_is_rejected(wrong: str) -> None:
    with pytest.raises(DriverError) as err:
        drivers.parse(PANEL, TOPIC, f"123418113001015{wrong}".encode(), NOW)
    assert err.value.reason == "bad_checksum"


@pytest.mark.parametrize(
    ("qualifier_code", "state"),
    [
        ("1130", PerimeterState.ALARM),
        ("1133", PerimeterState.ALARM),
        ("3130", PerimeterState.NORMAL),
        ("3133", PerimeterState.NORMAL),
        ("1144", PerimeterState.TAMPER),
        ("3144", PerimeterState.NORMAL),
        ("1380", PerimeterState.FAULT),
        ("3380", PerimeterState.NORMAL),
        ("1384", PerimeterState.LOW_BATTERY),
        ("3384", PerimeterState.NORMAL),
    ],
)
def test_event_codes_and_qualifiers_map_to_states(qualifier_code: str, state: PerimeterState) -> None:
    assert parse_one(f"1234 18 {qualifier_code} 01 001").state is state
    digits = with_check_digit(f"123418{qualifier_code}01001")
    assert parse_one(digits) == PerimeterReading(device="panel-sw", ts=NOW, detector="ir-s-02", beam=1, state=state)


def test_message_type_98_is_accepted() -> None:
    assert parse_one("1234 98 1133 01 015").state is PerimeterState.ALARM


def test_unmapped_zone_is_unknown_zone() -> None:
    with pytest.raises(DriverError) as err:
        drivers.parse(PANEL, TOPIC, b"1234 18 1130 01 016", NOW)
    assert err.value.reason == "unknown_zone"
    with pytest.raises(DriverError) as err:
        drivers.parse(PANEL, TOPIC, b"4321 18 1130 01 015", NOW)
    assert err.value.reason == "unknown_zone"


@pytest.mark.parametrize(
    "text",
    [
        "1234 18 1130 01",  # too short
        "1234 18 1130 01 0155",  # wrong grouping
        "12 3418 1130 01 015",  # wrong grouping
        "1234 17 1130 01 015",  # message type
        "1234 18 2130 01 015",  # qualifier
        "1234 18 1602 01 015",  # unsupported event code (periodic test)
        "1234 18 1B30 01 015",  # hex digit in the event code
        "1234 18 1130 01 0A5",  # A is not a Contact ID digit
        "hello world",
        "",
    ],
)
def test_malformed_messages_are_bad_format(text: str) -> None:
    with pytest.raises(DriverError) as err:
        drivers.parse(PANEL, TOPIC, text.encode(), NOW)
    assert err.value.reason == "bad_format"


def test_panel_may_also_send_json() -> None:
    (reading,) = drivers.parse(PANEL, TOPIC, b'{"detector":"ir-x","beam":1,"state":"alarm"}', NOW)
    assert isinstance(reading, PerimeterReading)
    assert reading.detector == "ir-x"
    assert reading.clock_skew
