"""initial schema: alerts, transitions, workflow, device events, devices, edges, snapshots,
commands, positions, walk tests, audit chain, users

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from central.store.models import UtcDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

GENESIS = "0" * 64


def upgrade() -> None:
    op.create_table(
        "received",
        sa.Column("event_id", sa.String(40), primary_key=True),
        sa.Column("edge", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("received_at", UtcDateTime(), nullable=False),
    )
    op.create_table(
        "alerts",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("rule", sa.String(64), nullable=False),
        sa.Column("level", sa.String(8), nullable=False),
        sa.Column("condition", sa.String(8), nullable=False),
        sa.Column("workflow", sa.String(16), nullable=False),
        sa.Column("shelved_from", sa.String(16), nullable=True),
        sa.Column("shelved_until", UtcDateTime(), nullable=True),
        sa.Column("site", sa.String(64), nullable=False),
        sa.Column("edge", sa.String(64), nullable=False),
        sa.Column("area", sa.String(64), nullable=True),
        sa.Column("grid", sa.String(64), nullable=True),
        sa.Column("zone", sa.String(64), nullable=True),
        sa.Column("subject_kind", sa.String(16), nullable=False),
        sa.Column("subject_id", sa.String(64), nullable=False),
        sa.Column("devices", sa.JSON(), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("snapshot", sa.String(64), nullable=True),
        sa.Column("suppressed", sa.String(16), nullable=True),
        sa.Column("origin", sa.String(8), nullable=False),
        sa.Column("first_seen", UtcDateTime(), nullable=False),
        sa.Column("edge_ts", UtcDateTime(), nullable=False),
        sa.Column("last_change", UtcDateTime(), nullable=False),
        sa.Column("escalated_to", sa.String(80), nullable=True),
        sa.Column("escalation_step", sa.Integer(), nullable=False),
        sa.Column("escalated_at", UtcDateTime(), nullable=True),
        sa.Column("resolution", sa.String(16), nullable=True),
        sa.Column("officer", sa.String(64), nullable=True),
    )
    op.create_index("ix_alerts_rule", "alerts", ["rule"])
    op.create_index("ix_alerts_level", "alerts", ["level"])
    op.create_index("ix_alerts_workflow", "alerts", ["workflow"])
    op.create_index("ix_alerts_last_change_id", "alerts", ["last_change", "id"])
    op.create_index("ix_alerts_first_seen", "alerts", ["first_seen"])
    op.create_table(
        "alert_transitions",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(40), nullable=False, unique=True),
        sa.Column("alert_id", sa.String(64), sa.ForeignKey("alerts.id", ondelete="CASCADE"), nullable=False),
        sa.Column("ts", UtcDateTime(), nullable=False),
        sa.Column("received_at", UtcDateTime(), nullable=False),
        sa.Column("level", sa.String(8), nullable=False),
        sa.Column("condition", sa.String(8), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("snapshot", sa.String(64), nullable=True),
        sa.Column("suppressed", sa.String(16), nullable=True),
    )
    op.create_index("ix_alert_transitions_alert_id", "alert_transitions", ["alert_id"])
    op.create_table(
        "workflow_entries",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("alert_id", sa.String(64), sa.ForeignKey("alerts.id", ondelete="CASCADE"), nullable=False),
        sa.Column("ts", UtcDateTime(), nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("from_state", sa.String(16), nullable=True),
        sa.Column("to_state", sa.String(16), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("data", sa.JSON(), nullable=False),
    )
    op.create_index("ix_workflow_entries_alert_id", "workflow_entries", ["alert_id"])
    op.create_table(
        "device_events",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(40), nullable=False),
        sa.Column("edge", sa.String(64), nullable=False),
        sa.Column("ts", UtcDateTime(), nullable=False),
        sa.Column("device", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
    )
    op.create_index("ix_device_events_event_id", "device_events", ["event_id"])
    op.create_index("ix_device_events_device_ts", "device_events", ["device", "ts"])
    op.create_table(
        "devices",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("edge", sa.String(64), nullable=True),
        sa.Column("family", sa.String(16), nullable=True),
        sa.Column("online", sa.Boolean(), nullable=True),
        sa.Column("last_seen", UtcDateTime(), nullable=True),
        sa.Column("battery", sa.Float(), nullable=True),
        sa.Column("dead_letters", sa.Integer(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=True),
        sa.Column("out_of_service_until", UtcDateTime(), nullable=True),
        sa.Column("out_of_service_reason", sa.Text(), nullable=True),
    )
    op.create_table(
        "edges",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("online", sa.Boolean(), nullable=False),
        sa.Column("last_heartbeat", UtcDateTime(), nullable=True),
        sa.Column("version", sa.String(64), nullable=True),
        sa.Column("uptime_s", sa.Float(), nullable=True),
        sa.Column("config_hash", sa.String(128), nullable=True),
        sa.Column("outbox", sa.JSON(), nullable=False),
        sa.Column("offline_alert", sa.String(64), nullable=True),
    )
    op.create_table(
        "snapshots",
        sa.Column("sha256", sa.String(64), primary_key=True),
        sa.Column("edge", sa.String(64), nullable=False),
        sa.Column("received_at", UtcDateTime(), nullable=False),
        sa.Column("jpeg", sa.LargeBinary(), nullable=False),
    )
    op.create_table(
        "commands",
        sa.Column("request_id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(32), nullable=True),
        sa.Column("edge", sa.String(64), nullable=True),
        sa.Column("grid", sa.String(64), nullable=True),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.Column("actor", sa.String(64), nullable=True),
        sa.Column("sent_at", UtcDateTime(), nullable=True),
        sa.Column("ok", sa.Boolean(), nullable=True),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("result_at", UtcDateTime(), nullable=True),
    )
    op.create_index("ix_commands_grid", "commands", ["grid"])
    op.create_table(
        "positions",
        sa.Column("key", sa.String(80), primary_key=True),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("person", sa.String(64), nullable=True),
        sa.Column("grid", sa.String(64), nullable=True),
        sa.Column("edge", sa.String(64), nullable=False),
        sa.Column("ts", UtcDateTime(), nullable=False),
        sa.Column("x", sa.Float(), nullable=True),
        sa.Column("y", sa.Float(), nullable=True),
        sa.Column("z", sa.Float(), nullable=True),
        sa.Column("lat", sa.Float(), nullable=True),
        sa.Column("lon", sa.Float(), nullable=True),
        sa.Column("acc_m", sa.Float(), nullable=True),
    )
    op.create_index("ix_positions_person", "positions", ["person"])
    op.create_table(
        "walk_tests",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("zone", sa.String(64), nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("started", UtcDateTime(), nullable=False),
        sa.Column("until", UtcDateTime(), nullable=False),
    )
    op.create_index("ix_walk_tests_zone", "walk_tests", ["zone"])
    op.create_table(
        "audit",
        sa.Column("seq", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("ts", UtcDateTime(), nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("target", sa.String(128), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.create_index("ix_audit_ts", "audit", ["ts"])
    head = op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.bulk_insert(head, [{"id": 1, "seq": 0, "hash": GENESIS}])
    op.create_table(
        "users",
        sa.Column("username", sa.String(64), primary_key=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
    )


def downgrade() -> None:
    for table in (
        "users",
        "audit_head",
        "audit",
        "walk_tests",
        "positions",
        "commands",
        "snapshots",
        "edges",
        "devices",
        "device_events",
        "workflow_entries",
        "alert_transitions",
        "alerts",
        "received",
    ):
        op.drop_table(table)
