"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-22 04:08:31.891488
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "api_keys",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("key_id", sa.String(length=32), nullable=False),
        sa.Column("salt", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("key_id", name=op.f("uq_api_keys_key_id")),
        sa.UniqueConstraint("name", name=op.f("uq_api_keys_name")),
    )
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("key_name", sa.String(length=100), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("method", sa.String(length=10), nullable=False),
        sa.Column("path", sa.String(length=300), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    op.create_table(
        "cycle_runs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("trigger", sa.String(length=40), nullable=False),
        sa.Column("controller", sa.String(length=40), nullable=False),
        sa.Column("fallback", sa.String(length=20), nullable=True),
        sa.Column("solver", sa.String(length=40), nullable=True),
        sa.Column("solver_status", sa.String(length=40), nullable=False),
        sa.Column("objective_cny", sa.Float(), nullable=True),
        sa.Column("terms_cny", sa.JSON(), nullable=False),
        sa.Column("timings_s", sa.JSON(), nullable=False),
        sa.Column("relaxed", sa.JSON(), nullable=False),
        sa.Column("violations", sa.JSON(), nullable=False),
        sa.Column("errors", sa.JSON(), nullable=False),
        sa.Column("clamps", sa.JSON(), nullable=False),
        sa.Column("stale_assets", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cycle_runs")),
    )
    with op.batch_alter_table("cycle_runs", schema=None) as batch_op:
        batch_op.create_index("ix_cycle_runs_at", ["at"], unique=False)

    op.create_table(
        "dr_events",
        sa.Column("event_id", sa.String(length=100), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.Column("expected", sa.JSON(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_dr_events")),
    )
    op.create_table(
        "ev_sessions",
        sa.Column("session_id", sa.String(length=100), nullable=False),
        sa.Column("charger", sa.String(length=100), nullable=False),
        sa.Column("arrival", sa.DateTime(timezone=True), nullable=False),
        sa.Column("departure", sa.DateTime(timezone=True), nullable=False),
        sa.Column("e_needed_kwh", sa.Float(), nullable=False),
        sa.Column("e_delivered_kwh", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("session_id", name=op.f("pk_ev_sessions")),
    )
    op.create_table(
        "telemetry",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("asset", sa.String(length=100), nullable=False),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("p_kw", sa.Float(), nullable=True),
        sa.Column("e_kwh", sa.Float(), nullable=True),
        sa.Column("source", sa.String(length=40), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_telemetry")),
    )
    with op.batch_alter_table("telemetry", schema=None) as batch_op:
        batch_op.create_index("ix_telemetry_asset_ts", ["asset", "ts"], unique=False)

    op.create_table(
        "dr_event_log",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("event_id", sa.String(length=100), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["event_id"], ["dr_events.event_id"], name=op.f("fk_dr_event_log_event_id_dr_events")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dr_event_log")),
    )
    op.create_table(
        "forecasts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("cycle_id", sa.Integer(), nullable=False),
        sa.Column("horizon_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("step_minutes", sa.Float(), nullable=False),
        sa.Column("source", sa.String(length=40), nullable=False),
        sa.Column("asset", sa.String(length=100), nullable=False),
        sa.Column("p50_kw", sa.JSON(), nullable=False),
        sa.Column("p10_kw", sa.JSON(), nullable=True),
        sa.Column("p90_kw", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(
            ["cycle_id"], ["cycle_runs.id"], name=op.f("fk_forecasts_cycle_id_cycle_runs")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_forecasts")),
    )
    with op.batch_alter_table("forecasts", schema=None) as batch_op:
        batch_op.create_index("ix_forecasts_cycle_id", ["cycle_id"], unique=False)

    op.create_table(
        "plans",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("cycle_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("horizon_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("step_minutes", sa.Float(), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("controller", sa.String(length=40), nullable=False),
        sa.Column("status", sa.String(length=40), nullable=False),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["cycle_id"], ["cycle_runs.id"], name=op.f("fk_plans_cycle_id_cycle_runs")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_plans")),
        sa.UniqueConstraint("cycle_id", name=op.f("uq_plans_cycle_id")),
        sa.UniqueConstraint("version", name=op.f("uq_plans_version")),
    )
    op.create_table(
        "setpoints",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("cycle_id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("asset", sa.String(length=100), nullable=False),
        sa.Column("p_kw", sa.Float(), nullable=False),
        sa.Column("clamp_reason", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["cycle_id"], ["cycle_runs.id"], name=op.f("fk_setpoints_cycle_id_cycle_runs")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_setpoints")),
    )
    with op.batch_alter_table("setpoints", schema=None) as batch_op:
        batch_op.create_index("ix_setpoints_cycle_id", ["cycle_id"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("setpoints", schema=None) as batch_op:
        batch_op.drop_index("ix_setpoints_cycle_id")

    op.drop_table("setpoints")
    op.drop_table("plans")
    with op.batch_alter_table("forecasts", schema=None) as batch_op:
        batch_op.drop_index("ix_forecasts_cycle_id")

    op.drop_table("forecasts")
    op.drop_table("dr_event_log")
    with op.batch_alter_table("telemetry", schema=None) as batch_op:
        batch_op.drop_index("ix_telemetry_asset_ts")

    op.drop_table("telemetry")
    op.drop_table("ev_sessions")
    op.drop_table("dr_events")
    with op.batch_alter_table("cycle_runs", schema=None) as batch_op:
        batch_op.drop_index("ix_cycle_runs_at")

    op.drop_table("cycle_runs")
    op.drop_table("audit_log")
    op.drop_table("api_keys")
