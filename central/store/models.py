"""ORM tables of central's alert store. Alembic migrations (`migrations/versions/`) create them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend (SQLite keeps no zone, so store naive UTC and re-attach it)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use aware UTC datetimes")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UtcDateTime(), dict[str, Any]: JSON(), list[Any]: JSON()}


class Received(Base):
    """Every uplink `event_id` central has stored; its primary key makes ingest idempotent."""

    __tablename__ = "received"
    event_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    edge: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    received_at: Mapped[datetime]


class Alert(Base):
    __tablename__ = "alerts"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    rule: Mapped[str] = mapped_column(String(64))
    level: Mapped[str] = mapped_column(String(8))
    condition: Mapped[str] = mapped_column(String(8))
    workflow: Mapped[str] = mapped_column(String(16))
    shelved_from: Mapped[str | None] = mapped_column(String(16))
    shelved_until: Mapped[datetime | None]
    site: Mapped[str] = mapped_column(String(64))
    edge: Mapped[str] = mapped_column(String(64))
    area: Mapped[str | None] = mapped_column(String(64))
    grid: Mapped[str | None] = mapped_column(String(64))
    zone: Mapped[str | None] = mapped_column(String(64))
    subject_kind: Mapped[str] = mapped_column(String(16))
    subject_id: Mapped[str] = mapped_column(String(64))
    devices: Mapped[list[Any]]
    title: Mapped[str] = mapped_column(String(200))
    detail: Mapped[dict[str, Any]]
    snapshot: Mapped[str | None] = mapped_column(String(64))
    suppressed: Mapped[str | None] = mapped_column(String(16))
    origin: Mapped[str] = mapped_column(String(8))  # "edge" or "central"
    first_seen: Mapped[datetime]
    edge_ts: Mapped[datetime]  # ts of the newest transition, so a late older one cannot undo it
    last_change: Mapped[datetime]
    escalated_to: Mapped[str | None] = mapped_column(String(80))
    escalation_step: Mapped[int] = mapped_column(Integer, default=0)
    escalated_at: Mapped[datetime | None]
    resolution: Mapped[str | None] = mapped_column(String(16))
    officer: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (
        Index("ix_alerts_last_change_id", "last_change", "id"),
        Index("ix_alerts_first_seen", "first_seen"),
        # list filters page in (last_change, id) order behind the filter column (migration 0002)
        Index("ix_alerts_workflow_last_change_id", "workflow", "last_change", "id"),
        Index("ix_alerts_level_last_change_id", "level", "last_change", "id"),
        Index("ix_alerts_rule_last_change_id", "rule", "last_change", "id"),
        Index("ix_alerts_grid_last_change_id", "grid", "last_change", "id"),
    )


class Transition(Base):
    __tablename__ = "alert_transitions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(40), unique=True)
    alert_id: Mapped[str] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"), index=True)
    ts: Mapped[datetime]
    received_at: Mapped[datetime]
    level: Mapped[str] = mapped_column(String(8))
    condition: Mapped[str] = mapped_column(String(8))
    title: Mapped[str] = mapped_column(String(200))
    detail: Mapped[dict[str, Any]]
    snapshot: Mapped[str | None] = mapped_column(String(64))
    suppressed: Mapped[str | None] = mapped_column(String(16))


class WorkflowEntry(Base):
    __tablename__ = "workflow_entries"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    alert_id: Mapped[str] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"), index=True)
    ts: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(32))
    from_state: Mapped[str | None] = mapped_column(String(16))
    to_state: Mapped[str | None] = mapped_column(String(16))
    note: Mapped[str | None] = mapped_column(Text)
    data: Mapped[dict[str, Any]]


class DeviceEventRow(Base):
    __tablename__ = "device_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(40), index=True)
    edge: Mapped[str] = mapped_column(String(64))
    ts: Mapped[datetime]
    device: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(64))
    data: Mapped[dict[str, Any]]

    __table_args__ = (Index("ix_device_events_device_ts", "device", "ts"),)


class DeviceRow(Base):
    __tablename__ = "devices"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    edge: Mapped[str | None] = mapped_column(String(64))
    family: Mapped[str | None] = mapped_column(String(16))
    online: Mapped[bool | None] = mapped_column(Boolean)
    last_seen: Mapped[datetime | None]
    battery: Mapped[float | None] = mapped_column(Float)
    dead_letters: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime | None]
    out_of_service_until: Mapped[datetime | None]
    out_of_service_reason: Mapped[str | None] = mapped_column(Text)


class EdgeRow(Base):
    __tablename__ = "edges"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    online: Mapped[bool] = mapped_column(Boolean)
    last_heartbeat: Mapped[datetime | None]
    version: Mapped[str | None] = mapped_column(String(64))
    uptime_s: Mapped[float | None] = mapped_column(Float)
    config_hash: Mapped[str | None] = mapped_column(String(128))
    outbox: Mapped[dict[str, Any]]
    offline_alert: Mapped[str | None] = mapped_column(String(64))


class Snapshot(Base):
    __tablename__ = "snapshots"
    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    edge: Mapped[str] = mapped_column(String(64))
    received_at: Mapped[datetime]
    jpeg: Mapped[bytes] = mapped_column(LargeBinary)


class Command(Base):
    """A command central sent to an edge (rollcall, arm, maintenance, walk_test) and its result."""

    __tablename__ = "commands"
    request_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str | None] = mapped_column(String(32))
    edge: Mapped[str | None] = mapped_column(String(64))
    grid: Mapped[str | None] = mapped_column(String(64), index=True)
    body: Mapped[dict[str, Any]]
    actor: Mapped[str | None] = mapped_column(String(64))
    sent_at: Mapped[datetime | None]
    ok: Mapped[bool | None] = mapped_column(Boolean)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    result_at: Mapped[datetime | None]


class PositionRow(Base):
    """Latest position of one tag (site metres) or band (GPS)."""

    __tablename__ = "positions"
    key: Mapped[str] = mapped_column(String(80), primary_key=True)  # "tag:<id>" or "band:<id>"
    kind: Mapped[str] = mapped_column(String(8))  # "position" or "gps"
    person: Mapped[str | None] = mapped_column(String(64), index=True)
    grid: Mapped[str | None] = mapped_column(String(64))
    edge: Mapped[str] = mapped_column(String(64))
    ts: Mapped[datetime]
    x: Mapped[float | None] = mapped_column(Float)
    y: Mapped[float | None] = mapped_column(Float)
    z: Mapped[float | None] = mapped_column(Float)
    lat: Mapped[float | None] = mapped_column(Float)
    lon: Mapped[float | None] = mapped_column(Float)
    acc_m: Mapped[float | None] = mapped_column(Float)


class WalkTest(Base):
    __tablename__ = "walk_tests"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    zone: Mapped[str] = mapped_column(String(64), index=True)
    actor: Mapped[str] = mapped_column(String(64))
    started: Mapped[datetime]
    until: Mapped[datetime]


class AuditRecord(Base):
    __tablename__ = "audit"
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    ts: Mapped[datetime] = mapped_column(index=True)
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(128))
    data: Mapped[dict[str, Any]]
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditHead(Base):
    """One row: the chain's last seq and hash. Writers lock it, so the chain stays a line."""

    __tablename__ = "audit_head"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(Integer)
    hash: Mapped[str] = mapped_column(String(64))


class UserRow(Base):
    __tablename__ = "users"
    username: Mapped[str] = mapped_column(String(64), primary_key=True)
    role: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(200), default="")
    password_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime]
