"""Settings of the running service, typed and validated once at start-up.

Read from the environment (prefix ``VPP_``) and from command-line overrides; built by the
caller (``vpp run``, a test) and injected into the runtime and the API, never at import time.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from vpp.park.dr_checks import DrBounds


class Settings(BaseSettings):
    """Everything the service needs besides the park configuration.

    Environment variables: ``VPP_DATABASE_URL``, ``VPP_HOST``, ``VPP_PORT``, ``VPP_SPEED``,
    ``VPP_ADMIN_KEY`` (bootstraps an admin API key named ``bootstrap-admin``), and the rest of
    the fields below with the ``VPP_`` prefix.
    """

    model_config = SettingsConfigDict(env_prefix="VPP_", extra="ignore")

    database_url: str = "sqlite:///var/vpp.sqlite3"
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    # Simulated clock: 1 = real time; N = N times faster (demonstrations).
    speed: float = Field(1.0, gt=0.0, le=100_000.0)
    # Where the simulated clock starts (site zone if naive); None = now.
    start_at: datetime | None = None
    # A cycle that starts later than this after its boundary is skipped (APScheduler).
    misfire_grace_s: float = Field(60.0, gt=0.0)
    # An asset whose last reading is older than this (plant clock, s) is held safe; the
    # simulated park reports each interval at its end, so keep it above one interval.
    stale_after_s: float = Field(1800.0, gt=0.0)
    # A reading this far from the asset's setpoint (or the park meter from the plan) re-solves.
    replan_threshold_kw: float = Field(200.0, gt=0.0)
    # Re-solves triggered by telemetry are at least this far apart (wall-clock seconds).
    replan_min_gap_s: float = Field(30.0, ge=0.0)
    # Telemetry plausibility (vpp.park.telemetry_checks says why these): a reading stamped
    # further than this after the service's clock is refused (s) ...
    telemetry_future_skew_s: float = Field(300.0, ge=0.0, le=86400.0)
    # ... as is a power beyond the asset's range by more than this fraction of its rating ...
    telemetry_p_margin_frac: float = Field(0.5, ge=0.0, le=10.0)
    # ... and a stored energy above the capacity by more than this fraction.
    telemetry_e_margin_frac: float = Field(0.05, ge=0.0, le=1.0)
    # A request body larger than this (bytes) gets a 413 before it is read (1 MiB: about
    # 11,000 telemetry readings of ~93 bytes, a day of a 100-asset park at 15 minutes).
    max_body_bytes: int = Field(1_048_576, ge=1024, le=1_073_741_824)
    # How often a cached API key's row is read again (revoked elsewhere: refused within it).
    key_recheck_s: float = Field(1.0, ge=0.0, le=60.0)
    # DR windows the API accepts, around the service's clock: ending at most this long ago
    # (a late-posted event can still be settled; its meter data is at hand) and starting at
    # most this far ahead (day-ahead calls come the day before; a week covers pre-agreed
    # schedules). Stored events beyond the ahead bound are skipped by the cycle, logged once.
    dr_window_past_days: float = Field(1.0, ge=0.0, le=31.0)
    dr_window_ahead_days: float = Field(7.0, gt=0.0, le=366.0)
    # A DR route (create, patch, confirm, decline, cancel) waits this long (wall clock, s)
    # for the re-solve its change asks for, and answers with that plan; after it, the
    # answer says the plan is pending (poll GET /api/v1/dr-events/{id}).
    dr_response_wait_s: float = Field(10.0, ge=0.0, le=300.0)
    # One writer per database (vpp.runtime.writer_lease): the service holding the lease
    # renews it every lease_heartbeat_s (wall clock, s) and before it stores each cycle; a
    # lease not renewed for lease_ttl_s lets another service take over. 15 s and 60 s: a
    # take-over within a minute, well inside one 15-minute interval (and the misfire grace),
    # while three missed heartbeats in a row (a database hiccup, a long pause) lose nothing.
    lease_heartbeat_s: float = Field(15.0, gt=0.0, le=3600.0)
    lease_ttl_s: float = Field(60.0, gt=0.0, le=86400.0)
    seed: int = 0
    admin_key: SecretStr | None = None

    @field_validator("database_url")
    @classmethod
    def _known_scheme(cls, v: str) -> str:
        if not v.startswith(("sqlite", "postgresql")):
            raise ValueError(
                f"VPP_DATABASE_URL: expected sqlite:///FILE or postgresql+psycopg://..., got {v!r}"
            )
        if v.startswith("postgresql://"):
            v = "postgresql+psycopg://" + v.removeprefix("postgresql://")
        return v

    @model_validator(mode="after")
    def _lease_outlives_heartbeats(self) -> Settings:
        if self.lease_ttl_s < 2 * self.lease_heartbeat_s:
            raise ValueError(
                f"lease_ttl_s ({self.lease_ttl_s:g} s) must be at least twice "
                f"lease_heartbeat_s ({self.lease_heartbeat_s:g} s): one late heartbeat would "
                f"lose the lease"
            )
        return self

    def dr_bounds(self, past: bool = True) -> DrBounds:
        """The bounds DR events are checked against around the service's clock; without
        the past side for events already stored (they age, and must still be settled)."""
        return DrBounds(
            past=timedelta(days=self.dr_window_past_days) if past else None,
            ahead=timedelta(days=self.dr_window_ahead_days),
        )
