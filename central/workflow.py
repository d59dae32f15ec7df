"""The operator workflow of an alert (contract §4.1) as a pure, table-driven state machine.

Condition (active/cleared, from the edge) is separate from workflow. `decide()` checks who may
do what from which state and returns the next state; it reads no clock and touches no store.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from gridwatch.contract.enums import Condition, Level, UserRole, WorkflowState

W = WorkflowState


class WorkflowError(Exception):
    """A refused command; `status` is the HTTP status the API answers with (404, 403, 409, 422)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Actor:
    username: str
    role: UserRole


class Command(StrEnum):
    ACK = "ack"
    DISPATCH = "dispatch"
    RESOLVE = "resolve"
    CLOSE = "close"
    SHELVE = "shelve"
    COMMENT = "comment"


OPEN_STATES = frozenset({W.NEW, W.ACKNOWLEDGED, W.DISPATCHED})

# command -> (states it may start from, state it leads to; None = unchanged)
TRANSITIONS: dict[Command, tuple[frozenset[WorkflowState], WorkflowState | None]] = {
    Command.ACK: (frozenset({W.NEW}), W.ACKNOWLEDGED),
    Command.DISPATCH: (frozenset({W.NEW, W.ACKNOWLEDGED}), W.DISPATCHED),
    Command.RESOLVE: (OPEN_STATES, W.RESOLVED),
    Command.CLOSE: (frozenset({W.RESOLVED}), W.CLOSED),
    Command.SHELVE: (OPEN_STATES, W.SHELVED),
    Command.COMMENT: (frozenset(WorkflowState), None),
}

_R = UserRole
ALLOWED_ROLES: dict[Command, frozenset[UserRole]] = {
    Command.ACK: frozenset({_R.OFFICER, _R.OPERATOR, _R.SUPERVISOR, _R.ADMIN}),
    Command.DISPATCH: frozenset({_R.OFFICER, _R.OPERATOR, _R.SUPERVISOR, _R.ADMIN}),
    Command.RESOLVE: frozenset({_R.OFFICER, _R.OPERATOR, _R.SUPERVISOR, _R.ADMIN}),
    Command.COMMENT: frozenset({_R.OFFICER, _R.OPERATOR, _R.SUPERVISOR, _R.ADMIN}),
    Command.SHELVE: frozenset({_R.OPERATOR, _R.SUPERVISOR, _R.ADMIN}),
    Command.CLOSE: frozenset({_R.SUPERVISOR, _R.ADMIN}),
}

MAINTENANCE_ROLES = frozenset({_R.ENGINEER, _R.OPERATOR, _R.SUPERVISOR, _R.ADMIN})
"""Who may take devices out of service and start walk tests."""


@dataclass(frozen=True, slots=True)
class AlertFacts:
    """What the state machine needs to know about an alert."""

    workflow: WorkflowState
    condition: Condition
    level: Level


def authorise(command: Command, actor: Actor) -> None:
    if actor.role not in ALLOWED_ROLES[command]:
        raise WorkflowError(403, f"role {actor.role} may not {command} alerts")


def authorise_maintenance(actor: Actor) -> None:
    if actor.role not in MAINTENANCE_ROLES:
        raise WorkflowError(403, f"role {actor.role} may not change maintenance or walk-test state")


def decide(
    alert: AlertFacts, command: Command, actor: Actor, now: datetime, *, shelve_until: datetime | None = None
) -> WorkflowState:
    """The workflow state after `command`, or WorkflowError (403 role, 422 input, 409 state)."""
    authorise(command, actor)
    if command is Command.SHELVE:
        if shelve_until is None or shelve_until.tzinfo is None:
            raise WorkflowError(422, "shelve needs an aware `until` time")
        if shelve_until <= now:
            raise WorkflowError(422, "shelve `until` must be in the future")
    sources, target = TRANSITIONS[command]
    if alert.workflow not in sources:
        raise WorkflowError(409, f"cannot {command} an alert that is {alert.workflow}")
    if command is Command.CLOSE and alert.level is Level.HIGH and alert.condition is Condition.ACTIVE:
        raise WorkflowError(409, "a high alert cannot be closed while its condition is still active")
    return alert.workflow if target is None else target


def unshelve_due(workflow: WorkflowState, shelved_until: datetime | None, now: datetime) -> bool:
    """A shelved alert returns to its previous state once `until` has passed."""
    return workflow is W.SHELVED and shelved_until is not None and shelved_until <= now


def escalation_target(step: int, area: str | None) -> str | None:
    """Who an unacknowledged alert escalates to at `step` (0: area supervisor, 1: command centre)."""
    if step == 0:
        return f"area:{area}" if area else "command"
    if step == 1:
        return "command"
    return None
