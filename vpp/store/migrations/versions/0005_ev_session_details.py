"""EV sessions keep everything the plan uses: the car's power limit, the intermediate target
(energy by a time), the V2G energy that may be taken back and who gives way first. Before,
a restart recovered sessions without them (a van's target and priority were lost).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 15:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

COLUMNS = (
    ("p_max_kw", sa.Float()),
    ("target_e_kwh", sa.Float()),
    ("target_time", sa.DateTime(timezone=True)),
    ("e_dischargeable_kwh", sa.Float()),
    ("give_way", sa.String(length=10)),
)


def upgrade() -> None:
    with op.batch_alter_table("ev_sessions", schema=None) as batch_op:
        for name, kind in COLUMNS:
            batch_op.add_column(sa.Column(name, kind, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("ev_sessions", schema=None) as batch_op:
        for name, _ in reversed(COLUMNS):
            batch_op.drop_column(name)
