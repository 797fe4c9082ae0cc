"""DR settlements without double counting, with compliance and compensation: the intervals
attributed to the event, the cap compliance of a cap-only event, the compensation in CNY;
a delivery ratio may be null (nothing was requested)

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 11:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("dr_settlements", schema=None) as batch_op:
        batch_op.alter_column("delivery_ratio", existing_type=sa.Float(), nullable=True)
        batch_op.add_column(sa.Column("owned", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("shared_with", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("cap_kw", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("intervals_over_cap", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("e_over_cap_kwh", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("compliant_frac", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("compensation_cny", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("compensation", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("dr_settlements", schema=None) as batch_op:
        for name in (
            "compensation",
            "compensation_cny",
            "compliant_frac",
            "e_over_cap_kwh",
            "intervals_over_cap",
            "cap_kw",
            "shared_with",
            "owned",
        ):
            batch_op.drop_column(name)
        batch_op.alter_column("delivery_ratio", existing_type=sa.Float(), nullable=False)
