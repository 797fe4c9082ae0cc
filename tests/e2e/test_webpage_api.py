"""The read resources the operator's page adds (api/routes/ui_data.py) against a running
service on the simulated park, on SQLite and on PostgreSQL: the same keys and roles as every
read, times in the park's zone, and each figure checked against a second path to it (the
stored readings and plans, a pandapower power flow of its own, the tariff applied by hand).
Also the page's files: served from the package with a Content-Security-Policy, nothing
fetched from elsewhere.
"""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime, timedelta
from importlib.resources import files
from types import SimpleNamespace

import numpy as np
import pytest

from api.auth import GRANTS, Role
from api.routes import ui_data
from api.ui.network_view import binding, layout
from tests.e2e.conftest_web import start_service, wait_for
from tests.service_kit import headers
from vpp.accounting import carbon
from vpp.grid.loop import validate_result
from vpp.grid.network import GridModel, bus_q_kvar
from vpp.park import tariff as tariffs
from vpp.park.model import PARK_METER, Horizon
from vpp.store import repo


@pytest.fixture(scope="module")
def service(module_db_url):
    """The running service, once on SQLite and once on PostgreSQL (tests/conftest.py)."""
    svc, stop = start_service(module_db_url, history=HISTORY)
    yield svc
    stop()


HISTORY = 12  # three hours of cycles before the tests look
PATHS = ("/api/v1/me", "/api/v1/now", "/api/v1/network", "/api/v1/month-to-date")
OFFSET = re.compile(r"\+08:00$")


def _get(svc, path: str, role: str = "viewer"):
    r = svc.client.get(path, headers=headers(svc.keys[role]))
    assert r.status_code == 200, (path, r.status_code, r.text)
    return r.json()


def test_the_reads_need_a_key_and_every_role_may_read(service):
    for path in (*PATHS, "/api/v1/updates"):
        r = service.client.get(path)
        assert r.status_code == 401, path
        assert r.headers["www-authenticate"] == "Bearer"
        assert (
            service.client.get(path, headers=headers("vpp_0123456789abcdef_nope")).status_code
            == 401
        )
    for role in ("viewer", "operator", "utility", "admin"):
        me = _get(service, "/api/v1/me", role)
        assert me["role"] == role and me["name"] == f"test-{role}"
        assert me["may"] == sorted(p.value for p in GRANTS[Role(role)])
        assert me["tz"] == "Asia/Shanghai" and OFFSET.search(me["now"])
    for path in PATHS[1:]:
        _get(service, path, "viewer")


def test_now_is_the_stored_meter_against_the_stored_plans(service):
    rt = service.rt
    doc = _get(service, "/api/v1/now")
    past = doc["past"]
    assert all(OFFSET.search(t) for t in past["times"] + doc["plan"]["times"])
    start = datetime.fromisoformat(past["times"][0])
    step = timedelta(minutes=doc["step_minutes"])
    with rt.engine.connect() as conn:
        rows = repo.telemetry_between(conn, start, start + len(past["times"]) * step, PARK_METER)
        plans = conn.exec_driver_sql(
            "SELECT version, horizon_start, body FROM plans ORDER BY version"
        ).fetchall()
    by_t = {r["ts"]: r["p_kw"] for r in rows}
    seen, late = 0, []
    for i, (t, v) in enumerate(zip(past["times"], past["p_net_kw"], strict=True)):
        stored = by_t.get(datetime.fromisoformat(t))
        if stored is None:
            assert v is None
        elif v is None:
            late.append(i)
        else:
            assert v == pytest.approx(stored, abs=1e-3)
            seen += 1
    # The service runs while the test reads, and the page's document is kept warm (computed
    # when a cycle's reading comes, served from there): it may lag by the newest interval,
    # never miss a reading in the middle of the day.
    last_shown = max((i for i, v in enumerate(past["p_net_kw"]) if v is not None), default=-1)
    assert len(late) <= 1 and all(i > last_shown for i in late), (late, last_shown)
    assert seen >= HISTORY - 1
    # What the plan in force for each interval meant there: its last plan's first value.
    first: dict[datetime, float] = {}
    for _, hs, body in plans:
        b = json.loads(body) if isinstance(body, str) else body
        first[_utc(hs)] = b["p_net_kw"][0]
    matched = 0
    for t, v in zip(past["times"], past["plan_p_net_kw"], strict=True):
        want = first.get(datetime.fromisoformat(t))
        if want is not None and v is not None:
            assert v == pytest.approx(want, abs=1e-3)
            matched += 1
    assert matched >= HISTORY - 1
    cur = rt.current
    if doc["plan"]["plan_version"] == cur.version:
        assert doc["plan"]["plan_p_net_kw"] == pytest.approx(
            [round(float(x), 3) for x in cur.plan.p_net_kw], abs=1e-3
        )
    assert {b["name"] for b in doc["batteries"]} == {b.name for b in rt.site.assets.batteries}
    for b in doc["batteries"]:
        assert b["soc_frac"] is None or 0.0 <= b["soc_frac"] <= 1.0


def _utc(hs) -> datetime:
    t = hs if isinstance(hs, datetime) else datetime.fromisoformat(str(hs))
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t


def test_network_loading_is_a_power_flow_of_what_each_bus_drew(service):
    """Realised: pandapower's own runpp of the buses' summed readings (held over gaps) at
    the latest metered interval gives the same loadings and voltages; planned: the AC check
    of the plan in force, element by element."""
    rt = service.rt
    doc = wait_for(lambda: _net(service), 30, "the network model")
    k = doc["times"].index(doc["realised_at"])
    grid = GridModel.from_site(rt.site)
    t = datetime.fromisoformat(doc["realised_at"])
    step = timedelta(minutes=rt.site.dispatch.step_minutes)
    bus_p: dict[str, float] = {}
    assets = {}
    with rt.engine.connect() as conn:
        for name, bus, kind in _assets(rt.site):
            rows = repo.telemetry_between(conn, t - 8 * step, t + step, name)
            rows = [r for r in rows if r["p_kw"] is not None]
            p = float(rows[-1]["p_kw"]) if rows else 0.0
            bus_p[bus] = bus_p.get(bus, 0.0) + p
            assets[name] = SimpleNamespace(kind=kind, bus=bus, p_kw=np.array([p]))
    q = bus_q_kvar(assets, grid.buses, grid.options.load_power_factor)
    P, Q = grid.schedule_arrays(
        {b: np.array([v]) for b, v in bus_p.items()},
        {b: q.get(b, np.zeros(1)) for b in bus_p},
    )
    ref = grid.power_flow_runpp(P, Q)
    names = [str(n) for n in grid.net.trafo.name]
    got = {b["name"]: b for b in doc["branches"]}
    for i, name in enumerate(names):
        assert got[name]["loading_percent_series"][k] == pytest.approx(
            ref.trafo_loading_percent[0, i], abs=0.05
        ), name
    for i, name in enumerate(str(n) for n in grid.net.line.name):
        assert got[name]["loading_percent"] == pytest.approx(
            ref.line_loading_percent[0, i], abs=0.05
        ), name
    buses = {b["name"]: b for b in doc["buses"]}
    for i, name in enumerate(str(n) for n in grid.net.bus.name):
        assert buses[name]["vm_pu"] == pytest.approx(ref.vm_pu[0, i], abs=1e-4), name
    # Planned, when the plan did not change meanwhile: the AC check of the plan in force.
    cur = rt.current
    if doc["plan_version"] == cur.version:
        plan = validate_result(grid, cur.plan).flow
        for i, name in enumerate(names):
            assert got[name]["plan_loading_percent_series"] == pytest.approx(
                [round(float(x), 2) for x in plan.trafo_loading_percent[:, i]], abs=0.011
            )
    assert sum(b["slack"] for b in doc["buses"]) == 1
    assert len({(b["x"], b["y"]) for b in doc["buses"]}) == len(doc["buses"]), "no overlap"


def _net(svc):
    r = svc.client.get("/api/v1/network", headers=headers(svc.keys["viewer"]))
    return r.json() if r.status_code == 200 else None


def _assets(site):
    a = site.assets
    for kind, group in (
        ("pv", a.pv_arrays),
        ("battery", a.batteries),
        ("ev_charger", a.ev_chargers),
        ("shiftable", a.shiftable_loads),
        ("curtailable", a.curtailable_loads),
        ("base_load", a.base_loads),
        ("pedf", a.pedf_buildings),
    ):
        for x in group:
            yield x.name, x.bus, kind


def test_month_to_date_is_the_meter_priced_by_the_tariff(service):
    rt = service.rt
    doc = _get(service, "/api/v1/month-to-date")
    start, end = datetime.fromisoformat(doc["from"]), datetime.fromisoformat(doc["to"])
    assert start.day == 1 and start.hour == 0 and OFFSET.search(doc["from"])
    step = timedelta(minutes=rt.site.dispatch.step_minutes)
    with rt.engine.connect() as conn:
        rows = repo.telemetry_between(conn, start, end, PARK_METER)
    assert doc["intervals_metered"] == len(rows) >= HISTORY - 1
    h = Horizon(start, step, round((end - start) / step))
    price = tariffs.import_price_cny_per_kwh(rt.site.tariff, h, rt.site.calendar)
    index = {t: i for i, t in enumerate(h.times())}
    dt_h = step.total_seconds() / 3600
    cost = imp = peak = 0.0
    for r in rows:
        p = r["p_kw"]
        i = index[r["ts"]]
        cost += (max(p, 0) * price[i] - max(-p, 0) * rt.site.tariff.export_cny_per_kwh) * dt_h
        imp += max(p, 0) * dt_h
        peak = max(peak, p)
    assert doc["energy"]["energy_cost_cny"] == pytest.approx(cost, abs=0.02)
    assert doc["energy"]["import_kwh"] == pytest.approx(imp, abs=0.1)
    assert doc["demand"]["peak_import_kw"] == pytest.approx(peak, abs=0.1)
    rate = rt.site.tariff.demand_charge_cny_per_kw_month
    assert doc["demand"]["demand_charge_cny"] == pytest.approx(rate * peak, abs=0.1)
    ef = rt.site.carbon.emission_factor.ef_kg_per_kwh
    assert doc["carbon"]["co2_t"] == pytest.approx(imp * ef / 1000, rel=1e-3)
    assert doc["total_cost_cny"] == pytest.approx(
        doc["energy"]["energy_cost_cny"] + doc["demand"]["demand_charge_cny"]
        - doc["dr"]["compensation_cny"],
        abs=0.02,
    )  # fmt: skip
    tg = doc["targets"]
    assert tg["intensity_target_tce_per_10k_cny"] == carbon.INTENSITY_TARGET_TCE_PER_10K_CNY
    assert tg["co2_intensity_yoy_change_frac"] is None  # no stored year before
    assert tg["last_year_intervals_metered"] == 0


def _events(resp, until_s: float):
    """Server-sent events of a streaming response, (event, data) pairs, until ``until_s``."""
    kind = None
    end = time.monotonic() + until_s
    for line in resp.iter_lines():
        if line.startswith("event:"):
            kind = line[6:].strip()
        elif line.startswith("data:"):
            yield kind, json.loads(line[5:])
        if time.monotonic() > end:
            return


def test_updates_stream_a_new_plan_and_end_for_a_revoked_key(service, monkeypatch):
    monkeypatch.setattr(ui_data, "STREAM_RECHECK_S", 0.3)
    monkeypatch.setattr(ui_data, "STREAM_MAX_S", 3.0)
    rt = service.rt
    h = headers(service.keys["operator"])
    with service.client.stream("GET", "/api/v1/updates", headers=h) as resp:
        assert resp.headers["content-type"].startswith("text/event-stream")
        events = _events(resp, 10)
        kind, first = next(events)
        assert kind == "cycle" and first["plan_version"] <= rt.current.version
        assert OFFSET.search(first["at"])
        before = rt.current.version
        asked = time.monotonic()
        assert service.client.post("/api/v1/cycles", headers=h).status_code == 202
        for kind, data in events:
            if kind == "cycle" and data["plan_version"] > before:
                break
        else:
            pytest.fail("no cycle event for the new plan")
        assert time.monotonic() - asked < 10
        kinds = [k for k, _ in events]
        assert kinds[-1] == "bye"  # a stream ends: the page reconnects
    admin = headers(service.keys["admin"])
    made = service.client.post(
        "/api/v1/keys", json={"name": "sse-key", "role": "viewer"}, headers=admin
    )
    key = made.json()["key"]
    with service.client.stream("GET", "/api/v1/updates", headers=headers(key)) as resp:
        events = _events(resp, 5)
        assert next(events)[0] == "cycle"
        assert service.client.delete("/api/v1/keys/sse-key", headers=admin).status_code == 200
        assert [k for k, _ in events][-1] == "revoked"


def test_openapi_documents_the_page_resources(service):
    doc = service.client.get("/openapi.json").json()
    for path, schema in (
        ("/api/v1/now", "NowOut"),
        ("/api/v1/network", "NetworkOut"),
        ("/api/v1/month-to-date", "MonthToDateOut"),
        ("/api/v1/me", "MeOut"),
    ):
        op = doc["paths"][path]["get"]
        assert op["security"], path
        assert "401" in op["responses"] and "403" in op["responses"]
        assert schema in json.dumps(op["responses"]["200"]), path
    assert "/api/v1/updates" not in doc["paths"]  # a stream, documented in the README


def test_the_page_and_its_files_come_from_the_package(service):
    r = service.client.get("/")
    assert r.status_code == 200 and "text/html" in r.headers["content-type"]
    csp = r.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "connect-src 'self'" in csp
    html = r.text
    refs = re.findall(r'(?:src|href)="([^"]+)"', html)
    local = [x for x in refs if not x.startswith(("data:", "#"))]
    assert local and all(x.startswith("/ui/static/") for x in local), refs
    static = files("api.ui") / "static"
    for ref in local:
        got = service.client.get(ref)
        assert got.status_code == 200, ref
        assert got.content == (static / ref.removeprefix("/ui/static/")).read_bytes()
        assert "max-age" in got.headers["cache-control"]
    # No URL the page could fetch from elsewhere (SVG's namespace is a name, not a fetch).
    for f in ("app.js", "views.js", "charts.js", "i18n.js", "app.css", "index.html"):
        text = (static / f).read_text(encoding="utf-8")
        urls = [u for u in re.findall(r"https?://[^\s\"'`)]+", text) if "www.w3.org" not in u]
        assert urls == [], (f, urls)
    assert "uPlot" in (static / "vendor/uplot/uPlot.iife.min.js").read_text()
    assert "MIT" in (static / "vendor/uplot/LICENSE").read_text()
    assert "1.6.32" in (static / "vendor/uplot/SOURCE.txt").read_text()


def test_layout_draws_a_radial_park_as_a_single_line_diagram():
    branches = [
        ("line", "PCC", "F1"),
        ("line", "F1", "A-MV"),
        ("trafo", "A-MV", "A-LV"),
        ("line", "A-MV", "B-MV"),
        ("trafo", "B-MV", "B-LV"),
        ("line", "PCC", "F2"),
        ("trafo", "F2", "C-LV"),
    ]
    buses = ["PCC", "F1", "A-MV", "A-LV", "B-MV", "B-LV", "F2", "C-LV", "LOOSE"]
    pos = layout(buses, branches, "PCC")
    assert pos["PCC"] == (0, 0) and pos["F1"] == (1, 0) and pos["A-MV"] == (2, 0)
    assert pos["A-LV"] == (2, 1) and pos["B-MV"] == (3, 0) and pos["B-LV"] == (3, 1)
    assert pos["F2"][0] == 1 and pos["F2"][1] > 1  # the second feeder below the first
    assert pos["C-LV"] == (1, pos["F2"][1] + 1)
    assert pos["LOOSE"][1] > pos["C-LV"][1]
    assert len(set(pos.values())) == len(buses)


def test_binding_names_elements_near_or_over_their_limits():
    lim = SimpleNamespace(v_min_pu=0.95, v_max_pu=1.05, loading_max_percent=100.0)
    topo = {
        "branches": [
            {"name": "T1", "kind": "trafo", "plan_loading_max_percent": 96.0,
             "plan_loading_percent_series": [50.0, 96.0], "loading_percent": 40.0},
            {"name": "L1", "kind": "line", "plan_loading_max_percent": 20.0,
             "plan_loading_percent_series": [20.0, 10.0], "loading_percent": 101.0},
            {"name": "L2", "kind": "line", "plan_loading_max_percent": 94.0,
             "plan_loading_percent_series": [94.0, 90.0], "loading_percent": 30.0},
        ],
        "buses": [
            {"name": "B1", "plan_vm_min_pu": 0.953, "plan_vm_max_pu": 1.0, "vm_pu": 0.99},
            {"name": "B2", "plan_vm_min_pu": 0.99, "plan_vm_max_pu": 1.0, "vm_pu": 1.06},
        ],
    }  # fmt: skip
    h = Horizon(datetime(2026, 7, 15, 8, 0).astimezone(), timedelta(minutes=15), 2)
    got = {(b["element"], b["kind"], b["source"]): b for b in binding(topo, lim, None, h, 1)}
    assert set(got) == {
        ("T1", "trafo_loading", "plan"),
        ("L1", "line_loading", "measured"),
        ("B1", "undervoltage", "plan"),
        ("B2", "overvoltage", "measured"),
    }
    assert not got[("T1", "trafo_loading", "plan")]["broken"]
    assert got[("L1", "line_loading", "measured")]["broken"]
    assert got[("B2", "overvoltage", "measured")]["broken"]
