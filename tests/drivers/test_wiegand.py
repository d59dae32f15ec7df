"""Wiegand 26/34 raw bits in access events: facility + card, both parities checked (contract §2.3)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import drivers
from drivers import DeviceContext, DriverError, wiegand
from gridwatch.contract import AccessReading, Family

NOW = datetime(2026, 11, 23, 6, 0, 0, tzinfo=UTC)
CTX = DeviceContext(id="acc-1", family=Family.ACCESS)


def frame(facility_bits: str, card_bits: str) -> str:
    """Build a frame by the textbook rule, independently of the driver's encoder."""
    data = facility_bits + card_bits
    half = len(data) // 2
    even = str(data[:half].count("1") % 2)
    odd = str(1 - data[half:].count("1") % 2)
    return even + data + odd


def card_of(raw: str) -> str | None:
    payload = f'{{"door":"D-1","event":"granted","card":"{raw}"}}'
    (reading,) = drivers.parse(CTX, "t/event", payload.encode(), NOW)
    assert isinstance(reading, AccessReading)
    return reading.card


def test_wiegand26_known_frame_decodes() -> None:
    # facility 1, card 1: data 00000001 0000000000000001 -> even parity 1, odd parity 0
    bits = "1" + "00000001" + "0000000000000001" + "0"
    assert bits == frame("00000001", "0000000000000001")
    assert card_of(f"wiegand26:{bits}") == "1:1"


def test_wiegand34_known_frame_decodes() -> None:
    bits = frame(format(4660, "016b"), format(65535, "016b"))
    assert card_of(f"wiegand34:{bits}") == "4660:65535"


@pytest.mark.parametrize("length", [26, 34])
@pytest.mark.parametrize("flip", [0, -1])
def test_flipped_parity_bit_is_rejected(length: int, flip: int) -> None:
    bits = list(frame("1" * (length - 18), "0101010101010101"))
    bits[flip] = "1" if bits[flip] == "0" else "0"
    with pytest.raises(DriverError) as err:
        card_of(f"wiegand{length}:{''.join(bits)}")
    assert err.value.reason == "bad_parity"


@pytest.mark.parametrize(
    "raw", ["wiegand26:0101", "wiegand34:" + "2" * 34, "wiegand37:" + "0" * 37, "wiegand26:" + "0" * 27]
)
def test_malformed_wiegand_is_bad_format(raw: str) -> None:
    with pytest.raises(DriverError) as err:
        card_of(raw)
    assert err.value.reason == "bad_format"


@settings(max_examples=100, deadline=None)
@given(length=st.sampled_from([26, 34]), data=st.data())
def test_any_single_bit_flip_is_caught_or_changes_the_card(length: int, data: st.DataObject) -> None:
    facility = data.draw(st.integers(0, (1 << wiegand.FACILITY_BITS[length]) - 1))
    number = data.draw(st.integers(0, 65535))
    bits = wiegand.encode(length, facility, number)
    assert wiegand.decode(length, bits) == (facility, number)
    assert bits == frame(format(facility, f"0{wiegand.FACILITY_BITS[length]}b"), format(number, "016b"))
    i = data.draw(st.integers(0, length - 1))
    flipped = bits[:i] + ("1" if bits[i] == "0" else "0") + bits[i + 1 :]
    with pytest.raises(DriverError) as err:
        wiegand.decode(length, flipped)
    assert err.value.reason == "bad_parity"
