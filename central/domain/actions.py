"""Operator commands on an alert (CONTRACT §4.1): ack, dispatch, resolve, close, shelve, comment.

`central.workflow.decide` says whether a command is allowed; this module applies it. Each command
is one transaction that locks the alert, changes it, and writes its history entry and audit record
together, so the history and the hash-chained audit log can never disagree with the alert.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from central import audit as audit_log
from central.domain.checks import check_id, check_note, parse_enum, require_aware
from central.domain.core import Core, Events, add_entry, later, lock_alert
from central.domain.plans import skipped_steps
from central.domain.views import alert_item, ts
from central.store.models import Alert
from central.workflow import Actor, AlertFacts, WorkflowError, decide
from central.workflow import Command as Cmd
from gridwatch.contract.enums import Condition, Level, Resolution, WorkflowState

Mutate = Callable[[Session, Alert, datetime], tuple[dict[str, Any], Events]]
"""A command's own change to the alert, run after `decide` allowed it: (history/audit data, extra events)."""


class Actions:
    """The operator workflow applied to the store; refusals are `WorkflowError`s with an HTTP status."""

    def __init__(self, core: Core) -> None:
        self.core = core

    def _act(
        self,
        alert_id: str,
        actor: Actor,
        command: Cmd,
        note: str | None,
        *,
        shelve_until: datetime | None = None,
        mutate: Mutate | None = None,
    ) -> dict[str, Any]:
        """One workflow command: decide, apply, history entry + audit record in one transaction, then publish."""
        core = self.core
        now = core.clock.now()

        def apply(session: Session) -> tuple[dict[str, Any], Events]:
            alert = lock_alert(session, alert_id)
            before = alert.workflow
            facts = AlertFacts(WorkflowState(before), Condition(alert.condition), Level(alert.level))
            after = decide(facts, command, actor, now, shelve_until=shelve_until)
            data, events = mutate(session, alert, now) if mutate else ({}, [])
            alert.workflow = after.value
            alert.last_change = later(alert.last_change, now)
            add_entry(session, alert, now, actor.username, command.value, before, after.value, note, data)
            audit_log.append(
                session,
                now,
                actor.username,
                f"alert.{command.value}",
                f"alert:{alert_id}",
                {"from": before, "to": after.value, "note": note, **data},
            )
            session.flush()
            item = alert_item(alert)
            return item, [("alert", item), *events]

        item, events = core.write(apply)
        core.emit(events)
        return item

    def ack(self, alert_id: str, actor: Actor, note: str | None = None) -> dict[str, Any]:
        """Acknowledge: someone is looking at it (stops escalation)."""
        return self._act(alert_id, actor, Cmd.ACK, check_note(note))

    def dispatch(self, alert_id: str, actor: Actor, officer: str, note: str | None = None) -> dict[str, Any]:
        """Send an officer to the alert."""
        check_id("officer", officer)

        def mutate(session: Session, alert: Alert, now: datetime) -> tuple[dict[str, Any], Events]:
            alert.officer = officer
            return {"officer": officer}, []

        return self._act(alert_id, actor, Cmd.DISPATCH, check_note(note), mutate=mutate)

    def resolve(
        self,
        alert_id: str,
        actor: Actor,
        resolution: Resolution | str,
        note: str | None,
        steps_done: list[str] | None = None,
    ) -> dict[str, Any]:
        """Resolve with a resolution and the response-plan steps done; skipped steps notify the area."""
        res = parse_enum(Resolution, "resolution", resolution)
        if res is None:
            raise WorkflowError(422, "`resolution` is required")
        check_note(note)
        done = list(steps_done or [])

        def mutate(session: Session, alert: Alert, now: datetime) -> tuple[dict[str, Any], Events]:
            skipped = skipped_steps(self.core.site.response_plans, alert.rule, done)
            alert.resolution = res.value
            data: dict[str, Any] = {"resolution": res.value, "steps_done": done}
            if not skipped:
                return data, []
            return {**data, "steps_skipped": skipped}, self._steps_skipped(session, alert, actor, now, note, skipped)

        return self._act(alert_id, actor, Cmd.RESOLVE, note, mutate=mutate)

    def _steps_skipped(
        self, session: Session, alert: Alert, actor: Actor, now: datetime, note: str | None, skipped: list[str]
    ) -> Events:
        """Record and announce skipped plan steps: the area supervisor (or command) must know."""
        target = f"area:{alert.area}" if alert.area else "command"
        data = {"skipped": skipped, "notified": target}
        add_entry(session, alert, now, actor.username, "steps_skipped", alert.workflow, alert.workflow, note, data)
        audit_log.append(session, now, actor.username, "alert.steps_skipped", f"alert:{alert.id}", dict(data))
        notice = {
            "kind": "steps_skipped",
            "id": alert.id,
            "rule": alert.rule,
            "level": alert.level,
            "to": target,
            "supervisor": self.core.supervisors.get(alert.area or ""),
            "by": actor.username,
            "skipped": skipped,
            "ts": ts(now),
        }
        return [("escalation", notice)]

    def close(self, alert_id: str, actor: Actor, note: str | None = None) -> dict[str, Any]:
        """Close a resolved alert; it leaves the operator's list."""
        return self._act(alert_id, actor, Cmd.CLOSE, check_note(note))

    def shelve(self, alert_id: str, actor: Actor, until: datetime, reason: str) -> dict[str, Any]:
        """Shelve until a time with a reason; the timers return it to its former state then."""
        require_aware("until", until)
        check_note(reason, required=True, name="reason")

        def mutate(session: Session, alert: Alert, now: datetime) -> tuple[dict[str, Any], Events]:
            alert.shelved_from = alert.workflow
            alert.shelved_until = until
            return {"until": ts(until)}, []

        return self._act(alert_id, actor, Cmd.SHELVE, reason, shelve_until=until, mutate=mutate)

    def comment(self, alert_id: str, actor: Actor, note: str) -> dict[str, Any]:
        """Add a note to the alert's history without changing its state."""
        return self._act(alert_id, actor, Cmd.COMMENT, check_note(note, required=True))
