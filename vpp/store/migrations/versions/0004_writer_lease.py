"""The writer lease: one service per database stores cycles and sends setpoints; the row
names it (host, pid, process start) and says until when its lease holds

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-08 09:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "writer_lease",
        sa.Column("scope", sa.String(length=40), nullable=False),
        sa.Column("park", sa.String(length=200), nullable=False),
        sa.Column("holder_id", sa.String(length=300), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("holder_started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("acquired_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("released_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("scope", name=op.f("pk_writer_lease")),
    )


def downgrade() -> None:
    op.drop_table("writer_lease")
