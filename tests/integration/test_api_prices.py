"""POST /prices and /emission-factors on SQLite and PostgreSQL: the market interface posts a
series, the next cycle plans on it (GET /plan says so, GET /prices shows each interval's
price and source); a forecast issued after the cycle's time is not used; a bad post is a 422
naming the field and stores nothing."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from tests.service_kit import T0, headers, make_keys, make_runtime, small_site
from vpp.park.model import EnergySeries
from vpp.plan.prepare import PrepareError

N = 16  # the small park's horizon (15 min)


@pytest.fixture
def api(db_url):
    rt = make_runtime(db_url)
    keys = make_keys(rt.engine)
    with TestClient(create_app(rt.settings, rt)) as client:
        yield client, {r: headers(k) for r, k in keys.items()}, rt
    rt.engine.dispose()


def _points(price: float, n: int = N, step_min: int = 15) -> list[dict]:
    return [
        {
            "interval_start": (T0 + timedelta(minutes=step_min * k)).isoformat(),
            "price_cny_per_kwh": price,
        }
        for k in range(n)
    ]


def test_posted_prices_drive_the_next_cycle(api):
    client, h, rt = api
    rt.run_cycle()
    before = client.get("/api/v1/plan", headers=h["viewer"]).json()
    assert before["prices"] == []  # the park file has no series: nothing to say
    tou = client.get("/api/v1/prices", headers=h["viewer"]).json()["horizon"]
    assert tou["source"] == ["fallback"] * N and tou["series"] is None
    body = {"series": "zj-spot", "step_minutes": 15, "points": _points(2.5)}
    r = client.post("/api/v1/prices", json=body, headers=h["operator"])
    assert r.status_code == 201, r.json()
    assert r.json()["stored"] == N and r.json()["cleared"] is True
    got = client.get("/api/v1/prices", headers=h["viewer"]).json()
    assert len(got["posted"]) == N
    hz = got["horizon"]
    assert hz["cleared"] == N and hz["fallback"] == 0
    assert hz["values"] == pytest.approx([2.5] * N, abs=1e-9)  # no adders: none configured
    rt.run_cycle()
    plan = client.get("/api/v1/plan", headers=h["viewer"]).json()
    assert any(
        m.startswith("prices: series 'zj-spot'") and f"covers {N} of {N}" in m
        for m in plan["prices"]
    ), plan["prices"]
    # The plan's energy term is priced at 2.5 CNY/kWh everywhere: it follows the post.
    assert plan["terms_cny"]["energy_import"] > before["terms_cny"]["energy_import"]
    assert rt.current.problem.price_import_cny_per_kwh == pytest.approx([2.5] * N)
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["prices"] == plan["prices"]


def test_a_forecast_issued_after_the_cycle_is_not_used_yet(api):
    client, h, rt = api
    issued = T0 + timedelta(hours=1)
    body = {"series": "zj-id", "issued_at": issued.isoformat(), "points": _points(3.0)}
    assert client.post("/api/v1/prices", json=body, headers=h["operator"]).status_code == 201
    rt.run_cycle()  # at T0: the forecast is not issued yet
    p = rt.current.problem.price_import_cny_per_kwh
    assert not (abs(p - 3.0) < 1e-9).any()
    assert any(f"covers 0 of {N}" in m for m in rt.current.plan.messages)
    rt.clock.set(issued)
    rt.run_cycle()  # an hour later: known; it covers the 12 intervals left of it
    cover = next(m for m in rt.current.plan.messages if m.startswith("prices:"))
    assert f"covers 12 of {N} intervals (cleared 0, forecast 12)" in cover
    assert rt.current.problem.price_import_cny_per_kwh[:12] == pytest.approx([3.0] * 12)


def test_bad_posts_are_refused_naming_the_field_and_store_nothing(api):
    client, h, _rt = api
    pts = _points(0.5, 4)
    dup = {"series": "x", "points": [*pts, pts[1]]}
    r = client.post("/api/v1/prices", json=dup, headers=h["operator"])
    assert r.status_code == 422
    detail = r.json()["detail"]
    assert any(d["loc"] == ["body", "points", 4, "interval_start"] for d in detail), detail
    neg = {"series": "x", "points": [*pts[:2], {**pts[2], "price_cny_per_kwh": -0.1}]}
    r = client.post("/api/v1/prices", json=neg, headers=h["operator"])
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["body", "points", 2, "price_cny_per_kwh"]
    off = {"series": "x", "points": [{**pts[0], "interval_start": "2026-07-15T08:07:00+08:00"}]}
    r = client.post("/api/v1/prices", json=off, headers=h["operator"])
    assert r.status_code == 422 and "15-minute step" in r.json()["detail"][0]["msg"]
    naive = {"series": "x", "points": [{**pts[0], "interval_start": "2026-07-15T08:00:00"}]}
    assert client.post("/api/v1/prices", json=naive, headers=h["operator"]).status_code == 422
    ok = {"series": "x", "points": pts}
    assert client.post("/api/v1/prices", json=ok, headers=h["viewer"]).status_code == 403
    assert client.get("/api/v1/prices", headers=h["viewer"]).json()["posted"] == []


def test_posted_emission_factors_reach_the_plan(api):
    client, h, rt = api
    pts = [
        {"interval_start": (T0 + timedelta(hours=k)).isoformat(), "ef_kg_per_kwh": 0.9}
        for k in range(4)
    ]
    body = {"series": "zj-marginal", "kind": "marginal", "points": pts}
    r = client.post("/api/v1/emission-factors", json=body, headers=h["operator"])
    assert r.status_code == 201, r.json()
    got = client.get("/api/v1/emission-factors", headers=h["viewer"]).json()
    assert got["horizon"]["values"] == pytest.approx([0.9] * N)
    rt.run_cycle()
    assert rt.current.problem.ef_kg_per_kwh == pytest.approx([0.9] * N)
    bad = {**body, "points": [{**pts[0], "ef_kg_per_kwh": 2.5}]}
    r = client.post("/api/v1/emission-factors", json=bad, headers=h["operator"])
    assert r.status_code == 422 and r.json()["detail"][0]["loc"][-1] == "ef_kg_per_kwh"


def test_a_required_series_refuses_the_cycle_until_the_prices_are_posted(db_url):
    site = small_site()
    spec = EnergySeries(name="zj-spot", required=True)  # posted only, no file
    site = dataclasses.replace(site, tariff=dataclasses.replace(site.tariff, energy_series=spec))
    rt = make_runtime(db_url, site=site)
    keys = make_keys(rt.engine)
    with TestClient(create_app(rt.settings, rt)) as client:
        with pytest.raises(
            PrepareError, match=f"'zj-spot' is required but does not cover {N} of {N}"
        ):
            rt.run_cycle()
        assert rt.current is None  # nothing planned on a price the park file refuses
        body = {"series": "zj-spot", "points": _points(0.8)}
        r = client.post("/api/v1/prices", json=body, headers=headers(keys["operator"]))
        assert r.status_code == 201
        rt.run_cycle()
        assert rt.current.problem.price_import_cny_per_kwh == pytest.approx([0.8] * N)
    rt.engine.dispose()
