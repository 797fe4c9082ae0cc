"""Prometheus metrics of one service instance, in a registry of its own (no import-time
global state: two apps in one process, as in the tests, never share counters)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

PHASE_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class Metrics:
    """Every series the service exports; ``render()`` gives the text exposition."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.cycle_phase_s = Histogram(
            "vpp_cycle_phase_seconds",
            "Duration of each phase of a control cycle",
            ["phase"],
            buckets=PHASE_BUCKETS_S,
            registry=r,
        )
        self.cycles = Counter(
            "vpp_cycles",
            "Control cycles run, by trigger, controller, solver status and fallback",
            ["trigger", "controller", "status", "fallback"],
            registry=r,
        )
        self.cycle_failures = Counter(
            "vpp_cycle_failures", "Cycles that raised before storing a plan", registry=r
        )
        self.last_cycle_ts = Gauge(
            "vpp_last_cycle_timestamp_seconds",
            "Wall-clock time of the last stored cycle",
            registry=r,
        )
        self.relaxed = Gauge(
            "vpp_relaxed_constraints", "Relaxed constraints in the last plan", registry=r
        )
        self.objective = Gauge(
            "vpp_objective_cny", "Objective terms of the last plan (CNY)", ["term"], registry=r
        )
        self.violations = Gauge(
            "vpp_invariant_violations", "Invariants broken by the last plan", registry=r
        )
        self.network_violations = Gauge(
            "vpp_network_violations", "Network violations found by the last validation", registry=r
        )
        self.forecast_error_kw = Histogram(
            "vpp_forecast_abs_error_kw",
            "Absolute forecast error against telemetry, by lead time",
            ["lead_steps"],
            buckets=(1, 5, 10, 25, 50, 100, 250, 500, 1000),
            registry=r,
        )
        self.dr_target_kw = Gauge(
            "vpp_dr_target_kw", "Target response of a confirmed DR event", ["event_id"], registry=r
        )
        self.dr_expected_kw = Gauge(
            "vpp_dr_expected_response_kw",
            "Mean response the current plan delivers for a DR event",
            ["event_id"],
            registry=r,
        )
        self.dr_realised_import_kw = Gauge(
            "vpp_dr_realised_import_kw",
            "Park import metered in the latest interval inside a DR event's window",
            ["event_id"],
            registry=r,
        )
        self.dr_realised_margin_kw = Gauge(
            "vpp_dr_realised_margin_kw",
            "Import cap minus metered import in the latest interval of the window (>= 0: held)",
            ["event_id"],
            registry=r,
        )
        self.dr_delivered_kwh = Gauge(
            "vpp_dr_delivered_kwh",
            "Energy a completed DR event delivered against its baseline (park meter, settled)",
            ["event_id", "baseline_method"],
            registry=r,
        )
        self.dr_delivery_ratio = Gauge(
            "vpp_dr_delivery_ratio",
            "Delivered over requested energy of a settled DR event (effective inside its band; "
            "not exported when nothing was requested)",
            ["event_id"],
            registry=r,
        )
        self.dr_effective = Gauge(
            "vpp_dr_effective",
            "1 when a settled DR event was effective (cap-only: every interval under the cap)",
            ["event_id"],
            registry=r,
        )
        self.dr_compliant_frac = Gauge(
            "vpp_dr_cap_compliant_frac",
            "Share of a settled cap-only DR event's intervals at or under its cap (0-1)",
            ["event_id"],
            registry=r,
        )
        self.dr_over_cap_kwh = Gauge(
            "vpp_dr_over_cap_kwh",
            "Energy a settled cap-only DR event imported above its cap",
            ["event_id"],
            registry=r,
        )
        self.dr_compensation_cny = Gauge(
            "vpp_dr_compensation_cny",
            "DR subsidy less non-performance penalty of a settled event (+ income)",
            ["event_id"],
            registry=r,
        )
        self.soc_frac = Gauge(
            "vpp_battery_soc_frac", "Measured state of charge (0-1)", ["battery"], registry=r
        )
        self.park_import_kw = Gauge(
            "vpp_park_import_kw", "Planned park import in the current interval", registry=r
        )
        self.park_export_kw = Gauge(
            "vpp_park_export_kw", "Planned park export in the current interval", registry=r
        )
        self.ev_delivered_kwh = Gauge(
            "vpp_ev_energy_delivered_kwh", "Energy delivered to plugged-in EVs", registry=r
        )
        self.ev_requested_kwh = Gauge(
            "vpp_ev_energy_requested_kwh", "Energy requested by plugged-in EVs", registry=r
        )
        self.clamped = Counter(
            "vpp_setpoints_clamped", "Setpoints changed by the safety layer", ["reason"], registry=r
        )
        self.stale_assets = Gauge(
            "vpp_stale_assets", "Assets held at a safe setpoint for stale telemetry", registry=r
        )
        # Health (vpp.runtime.health), refreshed on every /health and /metrics request.
        self.health_status = Gauge(
            "vpp_health_status", "Service health: 0 ok, 1 degraded, 2 failing", registry=r
        )
        self.db_writable = Gauge(
            "vpp_db_writable", "1 when the store took the write probe (cached a few s)", registry=r
        )
        self.last_cycle_age_s = Gauge(
            "vpp_last_cycle_age_seconds",
            "Wall-clock age of the last completed cycle (NaN before the first)",
            registry=r,
        )
        self.planner_alive = Gauge(
            "vpp_planner_alive",
            "1 while the planner process runs (NaN: the planner runs in the service)",
            registry=r,
        )
        self.health_reasons = Gauge(
            "vpp_health_reasons", "Reasons /health gives, by level", ["level"], registry=r
        )
        self.recent_errors = Gauge(
            "vpp_recent_errors",
            "Errors in the last intervals that /health counts, by kind",
            ["kind"],
            registry=r,
        )
        self.telemetry_rows = Counter(
            "vpp_telemetry_readings", "Telemetry readings stored", ["source"], registry=r
        )
        self.telemetry_refused = Counter(
            "vpp_telemetry_refused",
            "Telemetry readings refused as implausible (never stored), by offending field",
            ["source", "field"],
            registry=r,
        )
        self.auth_refused = Counter(
            "vpp_auth_refused",
            "Requests refused authentication: missing, invalid or revoked key, rate limited",
            ["reason"],
            registry=r,
        )
        self.unattributed_writes = Counter(
            "vpp_unattributed_writes",
            "Write requests refused without a verified key, by status code: counted here, "
            "not written to the audit log",
            ["status"],
            registry=r,
        )
        # Field devices (vpp.drivers.field), refreshed with the health gauges.
        self.device_fault = Gauge(
            "vpp_device_fault",
            "1 while a field device is in fault (no answer, offline, command refused): held safe",
            ["asset", "protocol"],
            registry=r,
        )
        self.ocpp_noncompliant = Gauge(
            "vpp_ocpp_noncompliant",
            "1 while a charger's station exceeds its charging profile (planned at its draw)",
            ["asset", "station"],
            registry=r,
        )
        self.field_fanout_s = Gauge(
            "vpp_field_fanout_seconds",
            "Time the last cycle took to send every field device its setpoint",
            registry=r,
        )
        self.resolves = Counter(
            "vpp_resolve_requests", "Event-driven re-solve requests", ["reason"], registry=r
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
