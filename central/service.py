"""Central's domain layer as one object: `CentralService`, what the API, ingest and CLI call.

The implementation lives in `central.domain`, one module per reason to change (ingest, queries,
actions, timers, maintenance, reports, users); this class composes them over one shared `Core`
and is the stable interface the rest of central imports. Every method below only delegates.

The API and MQTT ingest call these methods from worker threads; each method is one or a few short
transactions. Events for SSE are published only after the transaction that caused them commits.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any

# `X as X`: re-exported names this module defined before the split, so old imports keep working
from central.domain.actions import Actions
from central.domain.checks import MAX_LIMIT as MAX_LIMIT
from central.domain.checks import MAX_NOTE as MAX_NOTE
from central.domain.core import SYSTEM as SYSTEM
from central.domain.core import Core, Publish
from central.domain.core import Events as Events
from central.domain.ingest import Uplink
from central.domain.maintenance import Maintenance
from central.domain.queries import EVIDENCE_WINDOW as EVIDENCE_WINDOW
from central.domain.queries import POSITION_FRESH as POSITION_FRESH
from central.domain.queries import Queries
from central.domain.reports import Reports
from central.domain.timers import Timers
from central.domain.users import Users
from central.domain.views import alert_item as alert_item
from central.store.db import Database
from central.workflow import Actor, WorkflowError
from gridwatch.clock import Clock, SystemClock
from gridwatch.config.models import SiteConfig
from gridwatch.contract.enums import Condition, Level, Resolution, UserRole, WorkflowState
from gridwatch.contract.uplink import (
    AlertTransition,
    CmdResult,
    DevicesBody,
    EventsBody,
    Heartbeat,
    HeartbeatWill,
    TelemetryBody,
)

__all__ = ["Actor", "CentralService", "Publish", "WorkflowError"]


class CentralService:
    """Everything central does with its store; HTTP and MQTT are thin layers over this."""

    def __init__(
        self,
        db: Database,
        site: SiteConfig,
        *,
        clock: Clock | None = None,
        publish: Publish | None = None,
    ) -> None:
        core = Core(db, site, clock or SystemClock(), publish or (lambda event, data: None))
        self._core = core
        self._timers = Timers(core)  # first: it notes when central started
        self._uplink = Uplink(core)
        self._queries = Queries(core)
        self._actions = Actions(core)
        self._maintenance = Maintenance(core)
        self._reports = Reports(core)
        self._users = Users(core)

    @property
    def db(self) -> Database:
        return self._core.db

    @property
    def site(self) -> SiteConfig:
        return self._core.site

    @property
    def clock(self) -> Clock:
        return self._core.clock

    # -- ingest (central.domain.ingest) ------------------------------------------------------------
    def ingest_alert(self, edge: str, t: AlertTransition) -> bool:
        return self._uplink.ingest_alert(edge, t)

    def ingest_events(self, edge: str, body: EventsBody) -> bool:
        return self._uplink.ingest_events(edge, body)

    def ingest_devices(self, edge: str, body: DevicesBody) -> bool:
        return self._uplink.ingest_devices(edge, body)

    def ingest_heartbeat(self, edge: str, hb: Heartbeat | HeartbeatWill) -> None:
        self._uplink.ingest_heartbeat(edge, hb)

    def ingest_snapshot(self, edge: str, sha256: str, jpeg: bytes) -> bool:
        return self._uplink.ingest_snapshot(edge, sha256, jpeg)

    def register_command(
        self, request_id: str, name: str, body: dict[str, Any], actor: Actor, edge: str | None = None
    ) -> None:
        self._uplink.register_command(request_id, name, body, actor, edge)

    def ingest_cmd_result(self, edge: str, r: CmdResult) -> None:
        self._uplink.ingest_cmd_result(edge, r)

    def record_positions(self, edge: str, body: TelemetryBody) -> None:
        self._uplink.record_positions(edge, body)

    # -- queries (central.domain.queries) ----------------------------------------------------------
    def list_alerts(
        self,
        *,
        state: WorkflowState | str | None = None,
        level: Level | str | None = None,
        rule: str | None = None,
        site: str | None = None,
        area: str | None = None,
        grid: str | None = None,
        condition: Condition | str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 50,
        cursor: str | None = None,
        grids: Collection[str] | None = None,
    ) -> tuple[list[dict[str, Any]], str | None]:
        return self._queries.list_alerts(
            state=state,
            level=level,
            rule=rule,
            site=site,
            area=area,
            grid=grid,
            condition=condition,
            since=since,
            until=until,
            limit=limit,
            cursor=cursor,
            grids=grids,
        )

    def get_alert(self, alert_id: str) -> dict[str, Any]:
        return self._queries.get_alert(alert_id)

    def positions(self) -> list[dict[str, Any]]:
        return self._queries.positions()

    def person_location(self, person_id: str) -> dict[str, Any]:
        return self._queries.person_location(person_id)

    def headcount(self, grid_id: str) -> dict[str, Any]:
        return self._queries.headcount(grid_id)

    def edges(self) -> list[dict[str, Any]]:
        return self._queries.edges()

    def devices(self) -> list[dict[str, Any]]:
        return self._queries.devices()

    def snapshot(self, sha256: str) -> bytes | None:
        return self._queries.snapshot(sha256)

    def ready(self) -> bool:
        return self._queries.ready()

    # -- workflow, CONTRACT §4.1 (central.domain.actions) ------------------------------------------
    def ack(self, alert_id: str, actor: Actor, note: str | None = None) -> dict[str, Any]:
        return self._actions.ack(alert_id, actor, note)

    def dispatch(self, alert_id: str, actor: Actor, officer: str, note: str | None = None) -> dict[str, Any]:
        return self._actions.dispatch(alert_id, actor, officer, note)

    def resolve(
        self,
        alert_id: str,
        actor: Actor,
        resolution: Resolution | str,
        note: str | None,
        steps_done: list[str] | None = None,
    ) -> dict[str, Any]:
        return self._actions.resolve(alert_id, actor, resolution, note, steps_done)

    def close(self, alert_id: str, actor: Actor, note: str | None = None) -> dict[str, Any]:
        return self._actions.close(alert_id, actor, note)

    def shelve(self, alert_id: str, actor: Actor, until: datetime, reason: str) -> dict[str, Any]:
        return self._actions.shelve(alert_id, actor, until, reason)

    def comment(self, alert_id: str, actor: Actor, note: str) -> dict[str, Any]:
        return self._actions.comment(alert_id, actor, note)

    # -- time-driven (central.domain.timers) -------------------------------------------------------
    def tick(self, now: datetime) -> None:
        """Run everything that happens because time passed; call every second or so."""
        self._timers.tick(now)

    # -- maintenance and walk tests (central.domain.maintenance) -----------------------------------
    def set_out_of_service(self, device_id: str, actor: Actor, until: datetime, reason: str) -> dict[str, Any]:
        return self._maintenance.set_out_of_service(device_id, actor, until, reason)

    def set_in_service(self, device_id: str, actor: Actor) -> dict[str, Any]:
        return self._maintenance.set_in_service(device_id, actor)

    def start_walk_test(self, zone_id: str, actor: Actor, minutes: float) -> dict[str, Any]:
        return self._maintenance.start_walk_test(zone_id, actor, minutes)

    # -- KPIs and audit (central.domain.reports) ---------------------------------------------------
    def kpi(self, now: datetime, window_s: float = 86400) -> dict[str, Any]:
        return self._reports.kpi(now, window_s)

    def audit(
        self, *, since: datetime | None = None, limit: int = 100, cursor: str | None = None
    ) -> tuple[list[dict[str, Any]], str | None]:
        return self._reports.audit(since=since, limit=limit, cursor=cursor)

    def audit_verify(self) -> dict[str, Any]:
        return self._reports.audit_verify()

    # -- users (central.domain.users) --------------------------------------------------------------
    def ensure_admin(self, password: str) -> None:
        self._users.ensure_admin(password)

    def create_user(self, username: str, password: str, role: UserRole | str, name: str = "") -> None:
        self._users.create_user(username, password, role, name)

    def authenticate(self, username: str, password: str) -> Actor | None:
        return self._users.authenticate(username, password)

    def sync_config_users(self) -> None:
        self._users.sync_config_users()
