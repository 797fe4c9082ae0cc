"""The tables. Times are stored in UTC and always come back timezone-aware."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
)

from vpp.store.codec import EncodedJson

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class UtcDateTime(TypeDecorator):
    """A timezone-aware datetime stored as UTC (SQLite keeps no zone of its own)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: every stored time must carry a zone")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class JsonDoc(TypeDecorator):
    """JSON that may arrive encoded already (:class:`vpp.store.codec.EncodedJson`): stored
    as given, so a big document costs the writing process no encoding (the same column type
    in the database as ``JSON``)."""

    impl = JSON
    cache_ok = True

    def bind_processor(self, dialect):
        encode = super().bind_processor(dialect)

        def process(value):
            if isinstance(value, EncodedJson):
                return str(value)
            return encode(value) if encode else value

        return process


def _now() -> datetime:
    return datetime.now(UTC)


telemetry = Table(
    "telemetry",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("asset", String(100), nullable=False),
    Column("ts", UtcDateTime, nullable=False),
    Column("p_kw", Float),
    Column("e_kwh", Float),
    Column("source", String(40), nullable=False, default="api"),
    Index("ix_telemetry_asset_ts", "asset", "ts"),
)

cycle_runs = Table(
    "cycle_runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", UtcDateTime, nullable=False),
    Column("started_at", UtcDateTime, nullable=False),
    Column("finished_at", UtcDateTime, nullable=False),
    Column("trigger", String(40), nullable=False),
    Column("controller", String(40), nullable=False),
    Column("fallback", String(20)),
    Column("solver", String(40)),
    Column("solver_status", String(40), nullable=False),
    Column("objective_cny", Float),
    Column("terms_cny", JSON, nullable=False),
    Column("timings_s", JSON, nullable=False),
    Column("relaxed", JSON, nullable=False),
    Column("violations", JSON, nullable=False),
    Column("errors", JSON, nullable=False),
    Column("clamps", JSON, nullable=False),
    Column("stale_assets", JSON, nullable=False),
    Index("ix_cycle_runs_at", "at"),
)

plans = Table(
    "plans",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("cycle_id", Integer, ForeignKey("cycle_runs.id"), nullable=False, unique=True),
    Column("version", Integer, nullable=False, unique=True),
    Column("horizon_start", UtcDateTime, nullable=False),
    Column("step_minutes", Float, nullable=False),
    Column("n", Integer, nullable=False),
    Column("controller", String(40), nullable=False),
    Column("status", String(40), nullable=False),
    Column("body", JsonDoc, nullable=False),  # DispatchResult.to_json_dict()
)

forecasts = Table(
    "forecasts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("cycle_id", Integer, ForeignKey("cycle_runs.id"), nullable=False),
    Column("horizon_start", UtcDateTime, nullable=False),
    Column("step_minutes", Float, nullable=False),
    Column("source", String(40), nullable=False),
    Column("asset", String(100), nullable=False),
    Column("p50_kw", JsonDoc, nullable=False),
    Column("p10_kw", JsonDoc),
    Column("p90_kw", JsonDoc),
    Index("ix_forecasts_cycle_id", "cycle_id"),
)

setpoints = Table(
    "setpoints",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("cycle_id", Integer, ForeignKey("cycle_runs.id"), nullable=False),
    Column("at", UtcDateTime, nullable=False),
    Column("asset", String(100), nullable=False),
    Column("p_kw", Float, nullable=False),
    Column("clamp_reason", Text),
    Index("ix_setpoints_cycle_id", "cycle_id"),
)

dr_events = Table(
    "dr_events",
    metadata,
    Column("event_id", String(100), primary_key=True),
    Column("status", String(20), nullable=False),
    Column("body", JSON, nullable=False),  # the event's fields (api schema, JSON mode)
    Column("expected", JSON),  # expected delivery from the latest plan
    Column("version", Integer, nullable=False, default=1),
    Column("created_at", UtcDateTime, nullable=False, default=_now),
    Column("updated_at", UtcDateTime, nullable=False, default=_now),
)

dr_event_log = Table(
    "dr_event_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("event_id", String(100), ForeignKey("dr_events.event_id"), nullable=False),
    Column("at", UtcDateTime, nullable=False, default=_now),
    Column("status", String(20), nullable=False),
    Column("actor", String(100), nullable=False),
    Column("note", Text),
)

dr_settlements = Table(
    "dr_settlements",
    metadata,
    Column("event_id", String(100), ForeignKey("dr_events.event_id"), primary_key=True),
    Column("settled_at", UtcDateTime, nullable=False, default=_now),
    Column("baseline_method", String(40), nullable=False),
    Column("baseline_days", JSON, nullable=False),  # ISO dates of the days averaged
    Column("window_start", UtcDateTime, nullable=False),
    Column("step_minutes", Float, nullable=False),
    Column("baseline_kw", JSON, nullable=False),  # per interval of the windows
    Column("realised_kw", JSON, nullable=False),  # park meter; null = no reading
    Column("intervals", Integer, nullable=False),
    Column("intervals_metered", Integer, nullable=False),
    Column("requested_kwh", Float, nullable=False),
    Column("delivered_kwh", Float, nullable=False),
    Column("baseline_kwh", Float, nullable=False),
    Column("realised_kwh", Float, nullable=False),
    Column("delivery_ratio", Float),  # null: nothing was requested
    Column("effective", Boolean, nullable=False),
    # 0003: each interval counted once (the stricter event's), compliance, compensation
    Column("owned", JSON),  # per interval of the windows: attributed to this event
    Column("shared_with", JSON),  # events that took intervals of the windows
    Column("cap_kw", Float),  # cap-only events: the cap and how it was held
    Column("intervals_over_cap", Integer),
    Column("e_over_cap_kwh", Float),
    Column("compliant_frac", Float),
    Column("compensation_cny", Float),  # subsidies less penalty (+ income)
    Column("compensation", JSON),  # terms and parts (CNY, kWh, kW)
)

ev_sessions = Table(
    "ev_sessions",
    metadata,
    Column("session_id", String(100), primary_key=True),
    Column("charger", String(100), nullable=False),
    Column("arrival", UtcDateTime, nullable=False),
    Column("departure", UtcDateTime, nullable=False),
    Column("e_needed_kwh", Float, nullable=False),
    Column("e_delivered_kwh", Float, nullable=False, default=0.0),
    Column("updated_at", UtcDateTime, nullable=False, default=_now),
    # Migration 0005: the rest of an EvSession (None where the session has none).
    Column("p_max_kw", Float),
    Column("target_e_kwh", Float),
    Column("target_time", UtcDateTime),
    Column("e_dischargeable_kwh", Float),
    Column("give_way", String(10)),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(100), nullable=False, unique=True),
    Column("role", String(20), nullable=False),
    Column("key_id", String(32), nullable=False, unique=True),
    Column("salt", String(64), nullable=False),
    Column("hash", String(128), nullable=False),
    Column("created_at", UtcDateTime, nullable=False, default=_now),
    Column("revoked", Boolean, nullable=False, default=False),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", UtcDateTime, nullable=False, default=_now),
    Column("key_name", String(100), nullable=False),
    Column("role", String(20), nullable=False),
    Column("method", String(10), nullable=False),
    Column("path", String(300), nullable=False),
    Column("status_code", Integer, nullable=False),
    Column("detail", JSON),
)

# 0004: one writer of the cycles per database (vpp.store.lease): the service holding this
# row until ``expires_at`` is the only one that stores cycles and sends setpoints.
writer_lease = Table(
    "writer_lease",
    metadata,
    Column("scope", String(40), primary_key=True),  # what the holder alone writes: "dispatch"
    Column("park", String(200), nullable=False),  # the holder's park (site name)
    Column("holder_id", String(300), nullable=False),  # host/pid/process start
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("holder_started_at", UtcDateTime, nullable=False),
    Column("acquired_at", UtcDateTime, nullable=False),
    Column("heartbeat_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    Column("released_at", UtcDateTime),  # set by a clean stop (expires_at then too)
)

# 0006: price and emission-factor series posted to the service (POST /prices,
# POST /emission-factors); a row without ``issued_at`` is cleared, one with it a forecast
# issued then. Rows are only added: a re-post of an interval is a later row, which wins
# (vpp.park.series.merge).
market_series = Table(
    "market_series",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("quantity", String(10), nullable=False),  # "price" | "ef"
    Column("name", String(100), nullable=False),
    Column("kind", String(20), nullable=False),  # energy | average | marginal
    Column("step_minutes", Integer, nullable=False),
    Column("interval_start", UtcDateTime, nullable=False),
    Column("issued_at", UtcDateTime),
    Column("value", Float, nullable=False),  # CNY/kWh (price) or kg/kWh (ef)
    Column("export_value", Float),  # CNY/kWh, prices only
    Column("received_at", UtcDateTime, nullable=False, default=_now),
    Column("posted_by", String(100), nullable=False, default=""),
    Index("ix_market_series_quantity_interval_start", "quantity", "interval_start"),
)
