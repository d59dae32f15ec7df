"""alert list filters: (column, last_change, id) indexes for workflow, level, rule and grid

`GET /alerts?state=…` (and level, rule, grid, an officer's grids) pages newest first on
(last_change, id). A single-column index finds the matching rows but then every one of them is
sorted for each page (tens of thousands on a busy site); with last_change and id behind the filter
column the index already holds them in page order. Each replaces the single-column index it
extends, which it serves just as well for plain equality.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

REPLACED = ("rule", "level", "workflow")
COMPOSITE = ("workflow", "level", "rule", "grid")


def upgrade() -> None:
    for column in COMPOSITE:
        op.create_index(f"ix_alerts_{column}_last_change_id", "alerts", [column, "last_change", "id"])
    for column in REPLACED:
        op.drop_index(f"ix_alerts_{column}", table_name="alerts")


def downgrade() -> None:
    for column in REPLACED:
        op.create_index(f"ix_alerts_{column}", "alerts", [column])
    for column in COMPOSITE:
        op.drop_index(f"ix_alerts_{column}_last_change_id", table_name="alerts")
