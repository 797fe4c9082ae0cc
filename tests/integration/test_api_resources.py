"""The API's resources on SQLite and PostgreSQL: telemetry, DR lifecycle, plan, flexibility,
health and metrics; bad input gets a 422 that names the field."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from tests.service_kit import T0, dr_body, headers, make_keys, make_runtime


@pytest.fixture
def api(db_url):
    rt = make_runtime(db_url)
    keys = make_keys(rt.engine)
    with TestClient(create_app(rt.settings, rt)) as client:
        yield client, {r: headers(k) for r, k in keys.items()}, rt
    rt.engine.dispose()


def test_before_the_first_cycle_health_says_not_ready(api):
    client, h, rt = api
    r = client.get("/health")
    assert r.status_code == 503
    assert r.json()["database"] == "ok" and "no cycle has run yet" in r.json()["problems"]
    assert client.get("/api/v1/setpoints", headers=h["viewer"]).status_code == 503
    rt.run_cycle()
    r = client.get("/health")
    assert r.status_code == 200, r.json()
    assert r.json()["last_cycle"]["status"] == "optimal"


def test_setpoints_plan_forecasts_flexibility(api):
    client, h, rt = api
    rt.run_cycle()
    sp = client.get("/api/v1/setpoints", headers=h["viewer"]).json()
    names = {x["asset"] for x in sp["setpoints"]}
    assert "B02-bess" in names and sp["plan_version"] == 1
    one = client.get("/api/v1/setpoints", params={"asset": "B02-bess"}, headers=h["viewer"])
    assert [x["asset"] for x in one.json()["setpoints"]] == ["B02-bess"]
    # What a gateway's local loop holds at the park meter until the next cycle, with each
    # battery's room around the setpoint it was sent.
    tr = sp["tracking"]
    assert tr is not None and tr["start"] <= sp["at"] < tr["end"]
    assert tr["cap_kw"] is not None and tr["floor_kw"] is not None
    assert tr["floor_kw"] <= tr["planned_import_kw"] <= tr["cap_kw"] + 1e-6
    sent = {x["asset"]: x["p_kw"] for x in sp["setpoints"]}
    assert {b["name"] for b in tr["batteries"]} <= set(sent)
    for b in tr["batteries"]:
        assert b["lo_kw"] <= sent[b["name"]] <= b["hi_kw"]
        assert b["planned_kw"] == pytest.approx(sent[b["name"]], abs=1e-3)
    plan = client.get("/api/v1/plan", headers=h["viewer"]).json()
    assert len(plan["p_net_kw"]) == len(plan["times"]) == 16
    # every charger's plan, session by session: the sessions' kW sum to the charger's
    chargers = {n: a for n, a in plan["assets"].items() if a["kind"] == "ev_charger"}
    assert chargers and all("sessions" in a for a in chargers.values())
    for a in (a for a in chargers.values() if a["sessions"]):
        total = [sum(x) for x in zip(*a["sessions"].values(), strict=True)]
        assert total == pytest.approx(a["p_kw"], abs=1e-6)
    # The objective's money, its penalty weights and its grid-friendly preference apart;
    # relaxations as alarm lines.
    assert plan["objective_preference"] >= 0.0
    money = plan["objective_cost_cny"] + plan["objective_penalty"]
    assert money + plan["objective_preference"] == pytest.approx(plan["objective_cny"])
    assert plan["relaxed"] == [x["text"] for x in plan["relaxation_lines"]]
    assert isinstance(plan["assumptions"], list)
    fc = client.get("/api/v1/forecasts", headers=h["viewer"]).json()
    assert set(fc["assets"]["B01-pv"]) == {"p10_kw", "p50_kw", "p90_kw"}
    env = client.get("/api/v1/flexibility", headers=h["viewer"]).json()
    for lo, p, hi in zip(
        env["p_import_min_kw"], env["p_planned_kw"], env["p_import_max_kw"], strict=True
    ):
        assert lo - 1e-3 <= p <= hi + 1e-3
    cycles = client.get("/api/v1/cycles", headers=h["viewer"]).json()
    assert cycles[0]["timings_s"]["dispatch_s"] > 0
    one = client.get(f"/api/v1/cycles/{cycles[0]['id']}", headers=h["viewer"]).json()
    assert len(one["setpoints"]) == len(sp["setpoints"])


def test_telemetry_ingest_and_422_naming_the_field(api):
    client, h, _ = api
    good = {"readings": [{"asset": "B02-bess", "ts": T0.isoformat(), "p_kw": 10, "e_kwh": 900}]}
    r = client.post("/api/v1/telemetry", json=good, headers=h["operator"])
    assert r.status_code == 200 and r.json() == {"stored": 1}
    bad_asset = {"readings": [{"asset": "B99-nothing", "ts": T0.isoformat(), "p_kw": 1}]}
    r = client.post("/api/v1/telemetry", json=bad_asset, headers=h["operator"])
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["body", "readings", 0, "asset"]
    naive = {"readings": [{"asset": "B02-bess", "ts": "2026-07-15T08:00:00", "p_kw": 1}]}
    r = client.post("/api/v1/telemetry", json=naive, headers=h["operator"])
    assert r.status_code == 422 and r.json()["detail"][0]["loc"][-1] == "ts"
    huge = {"readings": [{"asset": "B02-bess", "ts": T0.isoformat(), "p_kw": 1e12}]}
    r = client.post("/api/v1/telemetry", json=huge, headers=h["operator"])
    assert r.status_code == 422 and r.json()["detail"][0]["loc"][-1] == "p_kw"


def test_dr_event_lifecycle(api):
    client, h, rt = api
    rt.run_cycle()
    body = dr_body("E-INV", contract_type="invitation", cap_kw=2500.0)
    r = client.post("/api/v1/dr-events", json=body, headers=h["utility"])
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "announced"
    assert client.post("/api/v1/dr-events", json=body, headers=h["utility"]).status_code == 409
    r = client.post("/api/v1/dr-events/E-INV/confirm", headers=h["operator"])
    assert r.status_code == 200 and r.json()["status"] == "confirmed"
    exp = r.json()["expected_delivery"]
    assert exp["intervals_in_horizon"] == 4 and exp["meets_target"] is True
    assert exp["import_max_kw"] <= 2500.0 + 1e-3
    r = client.patch(
        "/api/v1/dr-events/E-INV", json={"import_cap_kw": 2400.0}, headers=h["utility"]
    )
    assert r.status_code == 200 and r.json()["version"] == 3
    assert r.json()["expected_delivery"]["import_max_kw"] <= 2400.0 + 1e-3
    r = client.post("/api/v1/dr-events/E-INV/cancel", headers=h["utility"])
    assert r.json()["status"] == "cancelled"
    assert [x["status"] for x in r.json()["history"]] == [
        "announced",
        "confirmed",
        "confirmed",
        "cancelled",
    ]
    r = client.post("/api/v1/dr-events/E-INV/confirm", headers=h["operator"])
    assert r.status_code == 409
    listed = client.get("/api/v1/dr-events", params={"status": "cancelled"}, headers=h["viewer"])
    assert [e["event_id"] for e in listed.json()] == ["E-INV"]


def test_dr_input_errors_name_the_field(api):
    client, h, _ = api
    body = dr_body("E-BAD")
    body["windows"][0]["end"] = (T0 - timedelta(hours=1)).isoformat()
    r = client.post("/api/v1/dr-events", json=body, headers=h["utility"])
    assert r.status_code == 422 and r.json()["detail"][0]["loc"][:3] == ["body", "windows", 0]
    r = client.post(
        "/api/v1/dr-events", json=dr_body("E-BAD", direction="sideways"), headers=h["utility"]
    )
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "direction"]
    r = client.post("/api/v1/dr-events", json=dr_body("E-BAD", surprise=1), headers=h["utility"])
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "surprise"]


def test_metrics_expose_the_cycle(api):
    client, _, rt = api
    rt.run_cycle()
    text = client.get("/metrics").text
    for name in (
        "vpp_cycle_phase_seconds_bucket",
        'vpp_cycles_total{controller="mpc"',
        "vpp_battery_soc_frac",
        "vpp_park_import_kw",
        "vpp_objective_cny",
        "vpp_relaxed_constraints",
    ):
        assert name in text, name


def test_health_says_when_the_horizon_leaves_the_tariff_or_the_calendar(db_url):
    """A service runs for months: past its tariff's valid_to it goes on planning and /health
    says so (degraded, still ready)."""
    import dataclasses

    from tests.service_kit import small_site

    site = small_site()
    site = dataclasses.replace(
        site, tariff=dataclasses.replace(site.tariff, valid_to=T0.date() - timedelta(days=1))
    )
    rt = make_runtime(db_url, site=site)
    with TestClient(create_app(rt.settings, rt)) as client:
        rt.run_cycle()
        body = client.get("/health").json()
    rt.engine.dispose()
    assert body["ready"] is True and body["status"] == "degraded"
    (line,) = body["days_uncovered"]
    assert "valid" in line and T0.date().isoformat() in line
