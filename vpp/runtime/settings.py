"""Settings of the running service, typed and validated once at start-up.

Read from the environment (prefix ``VPP_``) and from command-line overrides; built by the
caller (``vpp run``, a test) and injected into the runtime and the API, never at import time.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


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
