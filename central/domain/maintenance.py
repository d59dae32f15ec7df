"""Maintenance bookkeeping: devices out of / back in service, and zone walk tests.

Only the record and its audit entry live here; the API sends the matching command to the edge,
which is what actually silences or tests the devices. Expiry is in `timers`.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from central import audit as audit_log
from central.domain.checks import check_note, require_aware
from central.domain.core import Core
from central.domain.views import device_dict, ts
from central.store.models import DeviceRow, WalkTest
from central.workflow import Actor, WorkflowError, authorise_maintenance

MAX_WALK_TEST_MIN = 240
"""Longest walk test (as the API schema allows): while it runs the zone's alerts are suppressed."""


class Maintenance:
    """Engineers' changes to devices and zones; every one is authorised and audited."""

    def __init__(self, core: Core) -> None:
        self.core = core

    def _device_known(self, session: Session, device_id: str) -> DeviceRow:
        """The device's row, locked; created for a configured device no edge has reported yet."""
        row = session.execute(select(DeviceRow).where(DeviceRow.id == device_id).with_for_update()).scalar()
        if row is None:
            config = self.core.site.device(device_id)
            if config is None:
                raise WorkflowError(404, f"no device {device_id!r}")
            row = DeviceRow(id=device_id, family=config.family.value, dead_letters=0)
            session.add(row)
        return row

    def set_out_of_service(self, device_id: str, actor: Actor, until: datetime, reason: str) -> dict[str, Any]:
        """Take a device out of service until `until` (its alerts are suppressed on the edge)."""
        authorise_maintenance(actor)
        require_aware("until", until)
        check_note(reason, required=True, name="reason")
        core = self.core
        now = core.clock.now()
        if until <= now:
            raise WorkflowError(422, "`until` must be in the future")

        def apply(session: Session) -> dict[str, Any]:
            row = self._device_known(session, device_id)
            row.out_of_service_until, row.out_of_service_reason = until, reason
            audit_log.append(
                session,
                now,
                actor.username,
                "device.out_of_service",
                f"device:{device_id}",
                {"until": ts(until), "reason": reason},
            )
            session.flush()
            return device_dict(row)

        item = core.write(apply)
        core.emit([("device", item)])
        return item

    def set_in_service(self, device_id: str, actor: Actor) -> dict[str, Any]:
        """Return a device to service now."""
        authorise_maintenance(actor)
        core = self.core
        now = core.clock.now()

        def apply(session: Session) -> dict[str, Any]:
            row = self._device_known(session, device_id)
            row.out_of_service_until, row.out_of_service_reason = None, None
            audit_log.append(session, now, actor.username, "device.in_service", f"device:{device_id}", {})
            session.flush()
            return device_dict(row)

        item = core.write(apply)
        core.emit([("device", item)])
        return item

    def start_walk_test(self, zone_id: str, actor: Actor, minutes: float) -> dict[str, Any]:
        """Record a walk test of a zone for `minutes`; its alerts then count as test hits in the KPIs."""
        authorise_maintenance(actor)
        core = self.core
        if core.site.zone(zone_id) is None:
            raise WorkflowError(404, f"no zone {zone_id!r}")
        if isinstance(minutes, bool) or not isinstance(minutes, int | float) or not 0 < minutes <= MAX_WALK_TEST_MIN:
            raise WorkflowError(422, f"`minutes` must be more than 0 and at most {MAX_WALK_TEST_MIN}")
        now = core.clock.now()
        until = now + timedelta(minutes=minutes)

        def apply(session: Session) -> dict[str, Any]:
            test = WalkTest(zone=zone_id, actor=actor.username, started=now, until=until)
            session.add(test)
            session.flush()
            audit_log.append(
                session, now, actor.username, "zone.walk_test", f"zone:{zone_id}", {"id": test.id, "until": ts(until)}
            )
            return {"id": test.id, "zone": zone_id, "started": ts(now), "until": ts(until), "by": actor.username}

        return core.write(apply)
