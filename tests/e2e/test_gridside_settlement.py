"""End to end: DR events that arrive through the grid side are settled like REST ones. A
running service (uvicorn on loopback, the scheduler on a simulated clock at 900x, the
simulated park as the plant) with the OpenADR 3 VEN polling the test VTN and the IEC 104
outstation; a utility sends one call over OpenADR 3 and one over the REST API, and the
dispatch centre a set-point over IEC 104. Each is stored, planned and, once its window is
over, settled on the park meter against the same baseline, and the API shows the same
delivery report for all three."""

# No "from __future__ import annotations": c104 checks callbacks' annotations as objects.

import threading
from datetime import timedelta

import c104
import httpx
import pytest
import uvicorn

from api.app import create_app
from controllers.mpc import MpcController
from tests.integration.gridside.conftest import free_port, until
from tests.integration.gridside.vtn3 import Vtn3
from tests.service_kit import T0, headers, make_keys, small_site
from vpp.gridside.config import GridSideConfig
from vpp.gridside.iec104 import IOA_SETPOINT, Iec104Config
from vpp.gridside.manager import start as start_grid_side
from vpp.gridside.offers import offer
from vpp.gridside.openadr3 import OpenAdr3Config
from vpp.park.profiles import ProfileForecaster
from vpp.runtime.clock import Clock
from vpp.runtime.plant import SteppedPlant
from vpp.runtime.scheduler import CycleScheduler, next_boundary
from vpp.runtime.service import Runtime
from vpp.runtime.settings import Settings
from vpp.sim.closed_loop import device_commands
from vpp.sim.simulated_park import SimOptions, SimulatedPark
from vpp.store.db import make_engine

SPEED = 900.0  # 15 simulated minutes per second


@pytest.fixture
def running(tmp_path):
    site = small_site()
    settings = Settings(
        database_url=f"sqlite:///{tmp_path}/vpp.sqlite3", speed=SPEED, port=free_port()
    )
    step = timedelta(minutes=site.dispatch.step_minutes)
    clock = Clock(T0 - timedelta(seconds=1), SPEED)
    park = SimulatedPark(site, seed=3, start=T0, options=SimOptions(load_noise_frac=0.0))
    rt = Runtime(
        site=site,
        settings=settings,
        engine=make_engine(settings.database_url),
        driver=SteppedPlant(park, step),
        forecaster=ProfileForecaster(),
        controller=MpcController(),
        clock=clock,
        commands_fn=device_commands,
    )
    rt.start()
    keys = make_keys(rt.engine)
    vtn = Vtn3()
    vtn_url = vtn.start()
    scheduler = CycleScheduler(rt, misfire_grace_s=5)
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings, rt), host="127.0.0.1", port=settings.port, log_level="warning"
        )
    )
    th = threading.Thread(target=server.run, daemon=True)
    th.start()
    until(lambda: server.started, "the API", 10)
    scheduler.start()
    until(lambda: rt.current is not None, "the first plan", 30)
    cfg = GridSideConfig(
        openadr3=OpenAdr3Config(
            vtn_url=vtn_url, poll_s=0.2, client_id="ven-1", client_secret="s3cret"
        ),
        iec104=Iec104Config(port=free_port(), common_address=3, hold_minutes=30),
    )
    gs = start_grid_side(rt, cfg)
    with httpx.Client(base_url=f"http://127.0.0.1:{settings.port}", timeout=10) as client:
        yield client, keys, rt, vtn, gs, step
    gs.stop()
    scheduler.shutdown()
    server.should_exit = True
    th.join(10)
    vtn.stop()


def _setpoint(port: int, ca: int, p_kw: float) -> str:
    cl = c104.Client(tick_rate_ms=50, command_timeout_ms=3000)
    con = cl.add_connection(ip="127.0.0.1", port=port, init=c104.Init.NONE)
    st = con.add_station(common_address=ca)
    sp = st.add_point(io_address=IOA_SETPOINT, type=c104.Type.C_SE_NC_1)
    raw: list[str] = []

    def on_raw(connection: c104.Connection, data: bytes) -> None:
        raw.append(c104.explain_bytes(apdu=data))

    con.on_receive_raw(callable=on_raw)
    cl.start()
    try:
        until(lambda: con.state in (c104.ConnectionState.OPEN_MUTED, c104.ConnectionState.OPEN),
              "the 104 link", 10)  # fmt: skip
        con.unmute()
        until(lambda: not con.is_muted, "STARTDT con", 10)
        sp.value = p_kw
        sp.transmit(cause=c104.Cot.ACTIVATION)

        def con_():
            return next((r for r in raw if "C_SE_NC_1" in r and "ACTIVATION_CON" in r), None)

        return until(con_, "the ACT_CON", 10)
    finally:
        cl.stop()


def test_grid_side_events_are_settled_like_rest_ones(running):
    client, keys, rt, vtn, gs, step = running
    # An hour of meter readings first: a window needs the hour before it as its baseline on
    # a database without similar days (for any event, REST or not).
    until(lambda: rt.clock.now() >= T0 + 5 * step and rt.current.at >= T0 + 4 * step,
          "an hour of metered history", 30)  # fmt: skip
    # IEC 104 first: a set-point the offer holds, from the current interval for half an hour.
    cur = rt.current
    off = offer(cur.problem, cur.plan, cur.version)
    target = float(off.plan_p_net_kw[0]) - 50.0
    con = _setpoint(gs.iec104.config.port, 3, target)
    assert "POSITIVE" in con, con
    sp = gs.iec104.setpoint
    # OpenADR 3: 100 kW less for an hour, after the set-point's hold (no shared intervals).
    start = max(next_boundary(rt.clock.now(), step) + 2 * step, sp.end)
    pid = vtn.add_program("peak")
    ivs = [
        {"id": i, "intervalPeriod": {"start": (start + i * step).isoformat(), "duration": "PT15M"},
         "payloads": [{"type": "DISPATCH_SETPOINT_RELATIVE", "values": [-100.0]}]}
        for i in range(4)
    ]  # fmt: skip
    oadr = f"oadr3:{vtn.add_event(pid, ivs)}"
    # REST: the same ask in the hour after.
    later = start + 4 * step
    body = {
        "event_id": "REST-1",
        "direction": "peak_shaving",
        "requested_kw": 100.0,
        "contract_type": "pre_agreed",
        "call_class": "intraday",
        "windows": [{"start": later.isoformat(), "end": (later + 4 * step).isoformat()}],
    }
    r = client.post("/api/v1/dr-events", json=body, headers=headers(keys["utility"]))
    assert r.status_code == 201, r.text
    sp_id = sp.event_id
    view = headers(keys["viewer"])

    def settled(eid):
        got = client.get(f"/api/v1/dr-events/{eid}", headers=view).json()
        return got if got.get("delivery") else None

    def state():
        out = {}
        for e in (oadr, "REST-1", sp_id):
            got = client.get(f"/api/v1/dr-events/{e}", headers=view).json()
            out[e] = (got.get("status"), bool(got.get("delivery")))
        return out

    try:
        until(lambda: all(v[1] for v in state().values()), "settlements", 40, every_s=0.2)
    except AssertionError as exc:
        raise AssertionError(f"{exc}: {state()} at {rt.clock.now()}, {rt.errors}") from None
    a, b, c = settled(oadr), settled("REST-1"), settled(sp_id)
    assert a["status"] == b["status"] == c["status"] == "completed"
    for x in (a, c):
        assert set(x["delivery"]) == set(b["delivery"])
        assert x["delivery"]["baseline_method"] == b["delivery"]["baseline_method"]
        assert x["delivery"]["intervals_metered"] == x["delivery"]["intervals"] > 0
    assert a["delivery"]["requested_kwh"] == pytest.approx(100.0, rel=1e-6)
    assert b["delivery"]["requested_kwh"] == pytest.approx(100.0, rel=1e-6)
    assert any(h["by"] == "openadr3:park-vpp" for h in a["history"])
    assert any(h["by"].startswith("iec104:") for h in c["history"])
    # The settlement's metrics carry them alike.
    metrics = client.get("/metrics").text
    delivered = [ln for ln in metrics.splitlines() if ln.startswith("vpp_dr_delivered_kwh{")]
    for eid in (oadr, "REST-1", sp_id):
        assert any(f'event_id="{eid}"' in ln for ln in delivered), eid
