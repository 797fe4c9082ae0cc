"""Price and emission-factor series posted to the service (POST /prices, POST
/emission-factors): one row an interval, cleared or a forecast with its issue time. A new
table; nothing stored before is touched.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 18:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "market_series",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("quantity", sa.String(length=10), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("step_minutes", sa.Integer(), nullable=False),
        sa.Column("interval_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("export_value", sa.Float(), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("posted_by", sa.String(length=100), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_market_series")),
    )
    op.create_index(
        "ix_market_series_quantity_interval_start",
        "market_series",
        ["quantity", "interval_start"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_market_series_quantity_interval_start", table_name="market_series")
    op.drop_table("market_series")
