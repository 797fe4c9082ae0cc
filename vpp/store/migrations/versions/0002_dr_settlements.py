"""DR settlements: each event's delivery measured on the park meter after its window

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 06:10:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dr_settlements",
        sa.Column("event_id", sa.String(length=100), nullable=False),
        sa.Column("settled_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("baseline_method", sa.String(length=40), nullable=False),
        sa.Column("baseline_days", sa.JSON(), nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("step_minutes", sa.Float(), nullable=False),
        sa.Column("baseline_kw", sa.JSON(), nullable=False),
        sa.Column("realised_kw", sa.JSON(), nullable=False),
        sa.Column("intervals", sa.Integer(), nullable=False),
        sa.Column("intervals_metered", sa.Integer(), nullable=False),
        sa.Column("requested_kwh", sa.Float(), nullable=False),
        sa.Column("delivered_kwh", sa.Float(), nullable=False),
        sa.Column("baseline_kwh", sa.Float(), nullable=False),
        sa.Column("realised_kwh", sa.Float(), nullable=False),
        sa.Column("delivery_ratio", sa.Float(), nullable=False),
        sa.Column("effective", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["dr_events.event_id"],
            name=op.f("fk_dr_settlements_event_id_dr_events"),
        ),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_dr_settlements")),
    )


def downgrade() -> None:
    op.drop_table("dr_settlements")
