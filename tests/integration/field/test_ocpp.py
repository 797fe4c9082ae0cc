"""The OCPP central system against real ``ocpp`` charge points on loopback, OCPP 1.6J and
2.0.1: Security Profile 1, sessions from transactions, charging profiles in the unit the
station takes, the compliance check, an offline station held safe, a reconnect and a boot
while a transaction runs, a station that never answers a call."""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from datetime import UTC, datetime, timedelta

import pytest
from websockets.exceptions import InvalidStatus

from tests.integration.field.peers import ChargePointSim, loopback_park
from vpp.drivers.field import FieldDriver
from vpp.drivers.ocpp_cs import profile_request
from vpp.park.config import load_site

STEP = timedelta(minutes=15)


def _k0() -> datetime:
    now = datetime.now(UTC)
    return now - (now - datetime(1970, 1, 1, tzinfo=UTC)) % STEP


@pytest.fixture
def field(peers, modbus, tmp_path):
    """A started field driver on the loopback park with 4 stations; ``sim(i, ...)`` makes
    charge point CP-0i (connected and booted)."""
    path, _, keys = loopback_park(
        tmp_path, modbus.port, chargers=4, ocpp={"call_timeout_s": 1.0, "compliance_intervals": 3}
    )
    drv = FieldDriver(load_site(path), clock=lambda: datetime.now(UTC))
    drv.start()
    url = f"ws://127.0.0.1:{drv.ocpp_port}/ocpp"
    sims = []

    def sim(i: int, version: str, **kw) -> ChargePointSim:
        s = ChargePointSim(f"CP-{i:02d}", version, url, keys[f"CP-{i:02d}"], **kw)
        peers.run(s.connect())
        peers.run(s.boot())
        sims.append(s)
        return s

    yield drv, sim, url, keys
    for s in sims:
        if s.ws is not None and not s.closed.is_set():
            peers.run(s.disconnect())
    drv.close()


def test_security_profile_1_lets_in_only_the_right_key(peers, field):
    drv, sim, url, keys = field
    for sid, key in (("CP-01", "wrong"), ("CP-09", keys["CP-01"]), ("CP-01", None)):
        bad = ChargePointSim(sid, "1.6", url, key)
        with pytest.raises(InvalidStatus, match="401"):
            peers.run(bad.connect())
    impostor = ChargePointSim("CP-02", "1.6", url, keys["CP-01"])  # another station's key
    with pytest.raises(InvalidStatus, match="401"):
        peers.run(impostor.connect())
    sim(1, "1.6")
    assert drv.cs.stations["CP-01"].connected and drv.cs.stations["CP-01"].boots == 1
    reasons = [r for _, r in drv.cs.refused]
    assert len(reasons) == 4 and "no basic credentials" in reasons


def test_transactions_of_both_versions_become_ev_sessions(peers, field):
    drv, sim, _, _ = field
    a, b = sim(1, "1.6", units="A"), sim(2, "2.0.1", units="W")
    departure = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=3)
    peers.run(a.plug_in(1, 11_000))
    peers.run(b.plug_in(1, 7_000, departure=departure, e_needed_wh=30_000))
    for _ in range(3):
        peers.run(a.meter(dt_s=600))
        peers.run(b.meter(dt_s=600))
    at = _k0()
    st = drv.read_state(at)
    by = {s.charger: s for s in st.ev_sessions}
    assert set(by) == {"EV-01", "EV-02"}
    e1, e2 = by["EV-01"], by["EV-02"]
    assert e1.session_id == f"ocpp:CP-01:{a.tx[1]}" and e2.session_id.endswith(b.tx[1])
    assert e1.e_delivered_kwh == pytest.approx(3 * 11_000 * 600 / 3.6e6, rel=1e-3)
    assert e2.e_delivered_kwh == pytest.approx(3 * 7_000 * 600 / 3.6e6, rel=1e-3)
    assert e2.departure == departure and e2.e_needed_kwh == pytest.approx(30.0)  # the car's
    assumed = {(x.subject, x.quantity) for x in st.assumptions}
    assert (e1.session_id, "dwell_h") in assumed and (e1.session_id, "e_needed_kwh") in assumed
    assert (e2.session_id, "dwell_h") not in assumed  # known from NotifyEVChargingNeeds
    assert st.stale_assets.isdisjoint({"EV-01", "EV-02"})
    assert {"EV-03", "EV-04"} <= st.stale_assets  # never connected: held safe
    rows = drv.telemetry(at)
    assert {r["asset"] for r in rows if r["p_kw"] > 0} >= {"EV-01", "EV-02"}
    peers.run(a.unplug(1))
    peers.run(b.unplug(1))
    assert drv.read_state(at).ev_sessions == ()


def test_profiles_go_out_in_the_unit_each_station_takes(peers, field):
    drv, sim, _, _ = field
    a, b = sim(1, "1.6", units="A"), sim(2, "2.0.1", units="W")
    at = _k0()
    drv.read_state(at)
    drv.apply(at, {"EV-01": 7.0, "EV-02": 5.0, "EV-03": 3.0})
    assert a.limits_w[1] == pytest.approx(10.1 * 230 * 3)  # 7 kW -> 10.1 A (rounded down)
    assert a.limits_w[0] == pytest.approx(10.1 * 230 * 3)  # the station maximum
    purposes = {p["charging_profile_purpose"] for _, p in a.profiles}
    assert purposes == {"TxDefaultProfile", "ChargePointMaxProfile"}
    assert b.limits_w == {1: 5000.0, 0: 5000.0}
    assert {p["charging_profile_purpose"] for _, p in b.profiles} == {
        "TxDefaultProfile",
        "ChargingStationMaxProfile",
    }
    assert drv.status["EV-01"].sent_for == at and drv.status["EV-02"].sent_for == at
    assert drv.status["EV-03"].sent_for is None  # offline: not sent
    drv.apply(at, {"EV-02": 30.0})  # beyond the 11 kW charger: never sent above it
    assert b.limits_w[1] == pytest.approx(11_000.0)
    assert all(w <= 11_000.0 for s in (a, b) for w in s.limits_w.values())


def test_a_station_that_ignores_its_profile_is_planned_at_its_draw(peers, field):
    drv, sim, _, _ = field
    good, bad = sim(1, "1.6", units="W"), sim(3, "2.0.1", units="W", follows=False)
    peers.run(good.plug_in(1, 11_000))
    peers.run(bad.plug_in(1, 11_000))
    at = _k0()
    drv.read_state(at)
    for k in range(1, 4):
        drv.apply(at, {"EV-01": 4.0, "EV-03": 4.0})
        for _ in range(2):
            peers.run(good.meter(dt_s=60))
            peers.run(bad.meter(dt_s=60))
        at += STEP
        st = drv.read_state(at)
        flagged = drv.health()["noncompliant"]
        assert ("EV-03" in flagged) == (k == 3), (k, flagged)
    assert "EV-01" not in flagged and flagged["EV-03"]["station"] == "CP-03"
    assert flagged["EV-03"]["metered_kw"] == pytest.approx(11.0)
    s = next(x for x in st.ev_sessions if x.charger == "EV-03")
    assert s.p_max_kw == pytest.approx(11.0) and s.target_e_kwh > s.e_delivered_kwh
    assert s.target_e_kwh - s.e_delivered_kwh == pytest.approx(
        11.0 * 0.25 * round((s.target_time - at) / STEP)
    )
    why = [x for x in st.assumptions if x.subject == s.session_id and x.quantity == "p_kw"]
    assert why and "exceeds its charging profile" in why[0].basis
    ok = next(x for x in st.ev_sessions if x.charger == "EV-01")
    assert ok.p_max_kw is None and ok.target_e_kwh is None


def test_offline_station_is_held_safe_and_gets_its_setpoint_back(peers, field):
    drv, sim, url, keys = field
    a = sim(1, "1.6", units="W")
    tx = peers.run(a.plug_in(1, 11_000))
    peers.run(a.meter(dt_s=60))
    at = _k0()
    drv.read_state(at)
    drv.apply(at, {"EV-01": 6.0})
    assert a.limits_w[1] == 6000.0
    peers.run(a.disconnect())
    st = drv.read_state(at + STEP)
    assert "EV-01" in st.stale_assets
    assert drv.health()["faults"]["EV-01"] == "station offline"
    assert [s.session_id for s in st.ev_sessions] == [f"ocpp:CP-01:{tx}"]  # it lives on
    drv.apply(at + STEP, {"EV-01": 0.0})  # held safe: cannot be sent while offline
    assert "offline" in drv.status["EV-01"].detail
    # the station comes back and boots while its transaction runs
    again = ChargePointSim("CP-01", "1.6", url, keys["CP-01"], units="W")
    again.tx, again.demand_w, again.energy_wh = dict(a.tx), dict(a.demand_w), dict(a.energy_wh)
    peers.run(again.connect())
    peers.run(again.boot())
    peers.run(asyncio.wait_for(again.got_profile.wait(), 5))  # its last setpoint again
    assert again.limits_w[1] == 0.0
    peers.run(again.meter(dt_s=60))
    st = drv.read_state(at + 2 * STEP)
    assert "EV-01" not in st.stale_assets
    assert [s.session_id for s in st.ev_sessions] == [f"ocpp:CP-01:{tx}"]
    assert drv.cs.stations["CP-01"].boots == 2 and drv.cs.stations["CP-01"].connects == 2
    peers.run(again.disconnect())


def test_a_station_that_never_answers_delays_no_other(peers, field):
    drv, sim, _, _ = field
    hung, ok = sim(1, "1.6", units="W"), sim(2, "2.0.1", units="W")
    hung.hang = True
    at = _k0()
    drv.read_state(at)
    t0 = time.perf_counter()
    drv.apply(at, {"EV-01": 5.0, "EV-02": 5.0})
    took = time.perf_counter() - t0
    assert ok.limits_w[1] == 5000.0 and drv.status["EV-02"].sent_for == at
    assert took < 5.0  # bounded by the call time-out (1 s here)
    assert "not delivered" in drv.status["EV-01"].write_fault
    assert "EV-01" in drv.read_state(at + STEP).stale_assets  # held safe until it answers


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
@pytest.mark.parametrize("cid, unit", [(0, "W"), (1, "A"), (2, "W")])
def test_profile_requests_pass_the_ocpp_json_schemas(version, cid, unit):
    """Sent without the library's per-message validation (a fan-out's cost): checked here."""
    from ocpp.messages import Call, validate_payload

    def run(coro):  # in a thread of its own: this worker's main thread may hold a loop
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            return pool.submit(asyncio.run, coro).result()

    payload = profile_request(version, cid, 16.04, unit, datetime.now(UTC))
    run(validate_payload(Call("1", "SetChargingProfile", payload), version))
    key = "csChargingProfiles" if version == "1.6" else "chargingProfile"
    assert payload[key]["chargingProfileKind"] == "Absolute"
    bad = {**payload, "colour": "red"}  # the schemas refuse what they do not define
    with pytest.raises(Exception, match=r"colour|[Aa]dditional"):
        run(validate_payload(Call("1", "SetChargingProfile", bad), version))
