"""Contact ID (SIA DC-05) alarm panel messages (contract §2.2).

`ACCT MT QEEE GG ZZZ`, e.g. `1234 18 1130 01 015`, or the 16-digit form with a check digit,
`123418113001015E`, where the sum of all digit values (0 counts as 10, B-F as 11-15) is a
multiple of 15.
"""

from __future__ import annotations

from dataclasses import dataclass

from drivers import DriverError
from gridwatch.contract import PerimeterState

MESSAGE_TYPES = frozenset({"18", "98"})
NEW_EVENT, RESTORE = "1", "3"
ALARM_CODES = frozenset({130, 133})
STATE_BY_CODE = {
    130: PerimeterState.ALARM,
    133: PerimeterState.ALARM,
    144: PerimeterState.TAMPER,
    380: PerimeterState.FAULT,
    384: PerimeterState.LOW_BATTERY,
}
CODE_BY_STATE = {
    PerimeterState.ALARM: 130,
    PerimeterState.TAMPER: 144,
    PerimeterState.FAULT: 380,
    PerimeterState.LOW_BATTERY: 384,
}

_GROUPS = (4, 2, 4, 2, 3)
_DIGIT_VALUE = {**{str(d): d for d in range(1, 10)}, "0": 10, "B": 11, "C": 12, "D": 13, "E": 14, "F": 15}
_VALUE_DIGIT = {v: k for k, v in _DIGIT_VALUE.items()}


@dataclass(frozen=True, slots=True)
class ContactIdEvent:
    account: str
    qualifier: str
    code: int
    group: int
    zone: int

    @property
    def state(self) -> PerimeterState:
        return PerimeterState.NORMAL if self.qualifier == RESTORE else STATE_BY_CODE[self.code]


def digit_sum(digits: str) -> int:
    return sum(_DIGIT_VALUE[d] for d in digits)


def check_digit(digits15: str) -> str:
    """The 16th digit that makes the digit sum a multiple of 15."""
    rest = digit_sum(digits15) % 15
    return _VALUE_DIGIT[15 - rest if rest else 15]


def decode(text: str) -> ContactIdEvent:
    """One Contact ID message; raises DriverError (bad_format / bad_checksum)."""
    tokens = text.upper().split()
    lengths = tuple(len(t) for t in tokens)
    digits = "".join(tokens)
    if lengths not in ((15,), (16,), _GROUPS, (*_GROUPS, 1)):
        raise DriverError("bad_format", f"not a Contact ID message: {text[:40]!r}")
    if any(d not in _DIGIT_VALUE for d in digits):
        raise DriverError("bad_format", f"Contact ID digits are 0-9 and B-F: {text[:40]!r}")
    if len(digits) == 16 and digit_sum(digits) % 15 != 0:
        raise DriverError("bad_checksum", f"Contact ID check digit is wrong: {digits}")
    account, mtype, qualifier, code, group, zone = (
        digits[0:4],
        digits[4:6],
        digits[6],
        digits[7:10],
        digits[10:12],
        digits[12:15],
    )
    if mtype not in MESSAGE_TYPES:
        raise DriverError("bad_format", f"Contact ID message type must be 18 or 98, got {mtype}")
    if qualifier not in (NEW_EVENT, RESTORE):
        raise DriverError("bad_format", f"Contact ID qualifier must be 1 (new) or 3 (restore), got {qualifier}")
    if not (code + group + zone).isdigit():
        raise DriverError("bad_format", f"Contact ID event, group and zone are decimal: {digits}")
    if int(code) not in STATE_BY_CODE:
        raise DriverError("bad_format", f"unsupported Contact ID event code {code}")
    return ContactIdEvent(account=account, qualifier=qualifier, code=int(code), group=int(group), zone=int(zone))


def encode(account: str, state: PerimeterState, zone: int, *, group: int = 1, checksum: bool = False) -> str:
    """The message a panel sends for `state` of one zone; a restore for NORMAL."""
    qualifier, code = (RESTORE, 130) if state is PerimeterState.NORMAL else (NEW_EVENT, CODE_BY_STATE[state])
    if checksum:
        digits = f"{account}18{qualifier}{code:03d}{group:02d}{zone:03d}"
        return digits + check_digit(digits)
    return f"{account} 18 {qualifier}{code:03d} {group:02d} {zone:03d}"
