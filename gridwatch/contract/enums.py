"""Closed vocabularies of the v1 contract as StrEnums."""

from __future__ import annotations

from enum import StrEnum


class Level(StrEnum):
    """Warning level; compare with `rank` (levels only ever go up automatically)."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"

    @property
    def rank(self) -> int:
        return _LEVEL_RANK[self]

    @classmethod
    def max(cls, a: Level, b: Level) -> Level:
        return a if a.rank >= b.rank else b


_LEVEL_RANK = {Level.LOW: 0, Level.MEDIUM: 1, Level.HIGH: 2}


class Condition(StrEnum):
    """Condition state of an alert as the edge sees it (contract §3.1 `state`)."""

    ACTIVE = "active"
    CLEARED = "cleared"


class Family(StrEnum):
    """Device family; one driver and one simulator module per family."""

    PERIMETER_IR = "perimeter_ir"
    ACCESS = "access"
    RTLS = "rtls"
    WRISTBAND = "wristband"
    CAMERA = "camera"


class PersonRole(StrEnum):
    INMATE = "inmate"
    STAFF = "staff"
    SUPERVISEE = "supervisee"


class UserRole(StrEnum):
    """Role of a console/API user (contract §4)."""

    OPERATOR = "operator"
    OFFICER = "officer"
    SUPERVISOR = "supervisor"
    ENGINEER = "engineer"
    ADMIN = "admin"


class ZoneKind(StrEnum):
    PERIMETER = "perimeter"
    RESTRICTED = "restricted"
    STAFF_ONLY = "staff_only"
    YARD = "yard"
    CELL = "cell"
    WORKSHOP = "workshop"
    EXCLUSION = "exclusion"
    INCLUSION = "inclusion"


class WorkflowState(StrEnum):
    """Operator workflow state (contract §4.1), separate from the condition."""

    NEW = "new"
    ACKNOWLEDGED = "acknowledged"
    DISPATCHED = "dispatched"
    RESOLVED = "resolved"
    CLOSED = "closed"
    SHELVED = "shelved"


class Resolution(StrEnum):
    REAL = "real"
    NUISANCE = "nuisance"
    FALSE = "false"
    TEST = "test"


class PerimeterState(StrEnum):
    ALARM = "alarm"
    NORMAL = "normal"
    TAMPER = "tamper"
    FAULT = "fault"
    LOW_BATTERY = "low_battery"


class AccessEvent(StrEnum):
    GRANTED = "granted"
    DENIED = "denied"
    DOOR_OPEN = "door_open"
    DOOR_CLOSED = "door_closed"
    DOOR_FORCED = "door_forced"
    DOOR_HELD = "door_held"
    TAMPER = "tamper"


class Direction(StrEnum):
    IN = "in"
    OUT = "out"


class StrapState(StrEnum):
    OPEN = "open"
    CLOSED = "closed"


class WristbandEvent(StrEnum):
    SOS = "sos"
    FALL = "fall"
    STRAP_OPEN = "strap_open"
    STRAP_CLOSED = "strap_closed"


class CameraEvent(StrEnum):
    MOTION = "motion"
    TAMPER = "tamper"
    VIDEO_LOSS = "video_loss"


class SubjectKind(StrEnum):
    PERSON = "person"
    DEVICE = "device"
    ZONE = "zone"
    DOOR = "door"


class Measurement(StrEnum):
    """Time-series measurements (contract §4)."""

    POSITION = "position"
    GPS = "gps"
    VITALS = "vitals"
    DEVICE = "device"
    ALERT = "alert"
