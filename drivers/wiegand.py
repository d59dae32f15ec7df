"""Wiegand 26 and 34 raw bits (contract §2.3): facility code + card number, both parities checked.

Layout: one even parity bit over the first half of the data bits, the facility code, the card
number, one odd parity bit over the second half. Wiegand 26 has an 8-bit facility code and
Wiegand 34 a 16-bit one; both have a 16-bit card number.
"""

from __future__ import annotations

from drivers import DriverError

FACILITY_BITS = {26: 8, 34: 16}
CARD_BITS = 16


def decode(length: int, bits: str) -> tuple[int, int]:
    """(facility, card number) from a Wiegand frame of `length` bits; raises DriverError."""
    if length not in FACILITY_BITS:
        raise DriverError("bad_format", f"unsupported Wiegand length {length} (26 or 34)")
    if len(bits) != length or any(b not in "01" for b in bits):
        raise DriverError("bad_format", f"wiegand{length} needs exactly {length} characters 0/1")
    data = bits[1:-1]
    half = len(data) // 2
    if (bits[0] + data[:half]).count("1") % 2 != 0:
        raise DriverError("bad_parity", f"wiegand{length}: leading even parity bit is wrong")
    if (data[half:] + bits[-1]).count("1") % 2 != 1:
        raise DriverError("bad_parity", f"wiegand{length}: trailing odd parity bit is wrong")
    facility_bits = FACILITY_BITS[length]
    return int(data[:facility_bits], 2), int(data[facility_bits:], 2)


def encode(length: int, facility: int, card: int) -> str:
    """The frame a reader sends for (facility, card), parities included."""
    facility_bits = FACILITY_BITS[length]
    if not (0 <= facility < 1 << facility_bits and 0 <= card < 1 << CARD_BITS):
        raise ValueError(f"facility {facility} / card {card} do not fit Wiegand {length}")
    data = format(facility, f"0{facility_bits}b") + format(card, f"0{CARD_BITS}b")
    half = len(data) // 2
    even = "1" if data[:half].count("1") % 2 else "0"
    odd = "0" if data[half:].count("1") % 2 else "1"
    return even + data + odd
