"""The OpenADR 2.0b VEN against ``openleadr``'s VTN on loopback (1 s polling): an event
becomes a DR event through the service's one path and is re-solved at once; a modification
updates it; a cancellation cancels it; a call the park's flexibility cannot hold is opted out
(stored declined, with why); an invitation is opted in once an operator confirms it; the
reports carry the meter and the offer; a VTN that goes away and comes back."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from tests.integration.gridside.conftest import free_port, until
from tests.integration.gridside.vtn2 import Vtn
from tests.service_kit import headers, make_keys
from vpp.gridside.offers import offer
from vpp.gridside.openadr2 import OpenAdr2Config, OpenAdr2Ven
from vpp.plan.prepare import horizon_for
from vpp.store import repo

POLL_S = 1.0


@pytest.fixture
def vtn():
    v = Vtn(free_port(), POLL_S)
    yield v
    v.close()


@pytest.fixture
def ven_of(service, vtn):
    made = []

    def make(**cfg):
        svc = service()
        ven = OpenAdr2Ven(
            svc.rt,
            OpenAdr2Config(vtn_url=vtn.url, report_sampling_s=1.0, watch_s=0.2, **cfg),
        )
        ven.start()
        made.append(ven)
        until(lambda: ven.registered, "the VEN to register", 20)
        return svc, ven

    yield make
    for ven in made:
        ven.stop()


def _window(svc, k0=2, n=4):
    """``n`` intervals from ``k0`` intervals after the current one (in the plan's horizon)."""
    h = horizon_for(svc.rt.site, svc.rt.clock.now())
    return h.start + k0 * h.step, h.step * n


def _intervals(start, length, payload, parts=1):
    d = length / parts
    return [
        {"dtstart": start + i * d, "duration": d, "signal_payload": payload} for i in range(parts)
    ]


def _stored(svc, event_id):
    with svc.rt.engine.connect() as conn:
        return repo.get_dr(conn, event_id)


def test_event_modification_cancellation(ven_of, vtn):
    svc, _ = ven_of()
    start, length = _window(svc)
    before = svc.version
    t0 = time.monotonic()
    vtn.add_event("EV-1", _intervals(start, length, -150.0, parts=2))
    until(lambda: vtn.opts_of("EV-1"), "the VEN's opt", 10)
    assert vtn.opts_of("EV-1") == ["optIn"]
    row = _stored(svc, "oadr2:EV-1")
    assert row["status"] == "confirmed"
    body = row["body"]
    assert body["direction"] == "peak_shaving" and body["requested_kw"] == pytest.approx(150.0)
    assert body["contract_type"] == "pre_agreed"
    # Two intervals with the same ask: one window over both.
    assert body["windows"] == [{"start": start.isoformat(), "end": (start + length).isoformat()}]
    # An immediate re-solve: the new plan follows within a poll period plus the solve.
    svc.wait_version_above(before, 10)
    latency = time.monotonic() - t0
    assert latency < POLL_S + 5.0, latency
    assert "oadr2:EV-1" in svc.rt.current.plan.dr_decisions
    # A modification: the payload changes and the modification number goes up.
    v = svc.version
    vtn.modify_event("EV-1", -220.0)
    until(lambda: _stored(svc, "oadr2:EV-1")["version"] > row["version"], "the update", 10)
    row2 = _stored(svc, "oadr2:EV-1")
    assert row2["body"]["requested_kw"] == pytest.approx(220.0)
    assert row2["status"] == "confirmed"
    svc.wait_version_above(v, 10)
    until(lambda: len(vtn.opts_of("EV-1")) >= 2, "the opt of the modification", 10)
    assert vtn.opts_of("EV-1")[1] == "optIn"
    # A cancellation.
    vtn.cancel_event("EV-1")
    until(lambda: _stored(svc, "oadr2:EV-1")["status"] == "cancelled", "the cancellation", 10)
    with svc.rt.engine.connect() as conn:
        actors = {h["actor"] for h in repo.dr_history(conn, "oadr2:EV-1")}
    assert actors >= {"openadr2:park-vpp"}


def test_a_call_the_park_cannot_hold_is_opted_out(ven_of, vtn):
    svc, _ = ven_of()
    start, length = _window(svc)
    cur = svc.rt.current
    off = offer(cur.problem, cur.plan, cur.version)
    m = off.mask(start, start + length)
    down = float((off.baseline_kw[m] - off.p_import_min_kw[m]).min())
    ask = down + 300.0  # more than the park can shed, less than the connection (checks pass)
    vtn.add_event("EV-BIG", _intervals(start, length, -ask))
    until(lambda: vtn.opts_of("EV-BIG"), "the VEN's opt", 10)
    assert vtn.opts_of("EV-BIG") == ["optOut"]
    row = _stored(svc, "oadr2:EV-BIG")
    assert row["status"] == "declined"
    with svc.rt.engine.connect() as conn:
        notes = [h["note"] for h in repo.dr_history(conn, "oadr2:EV-BIG")]
    assert any("cannot deliver" in n and "short by" in n for n in notes), notes
    # A price signal is no DR call: opted out, nothing stored.
    vtn.add_event(
        "EV-PRICE",
        _intervals(start, length, 0.9),
        signal_name="ELECTRICITY_PRICE",
        signal_type="price",
    )
    until(lambda: vtn.opts_of("EV-PRICE"), "the VEN's opt on a price", 10)
    assert vtn.opts_of("EV-PRICE") == ["optOut"]
    assert _stored(svc, "oadr2:EV-PRICE") is None


def test_an_invitation_is_opted_in_when_the_operator_confirms(ven_of, vtn):
    svc, _ = ven_of(contract_type="invitation")
    start, length = _window(svc, k0=4)
    vtn.add_event("EV-INV", _intervals(start, length, -100.0))
    until(lambda: vtn.opts_of("EV-INV"), "the VEN's first opt", 10)
    assert vtn.opts_of("EV-INV") == ["optOut"]  # awaiting the operator: not committed
    row = _stored(svc, "oadr2:EV-INV")
    assert row["status"] == "announced"
    assert row["body"]["confirm_deadline"] == start.isoformat()
    keys = make_keys(svc.rt.engine)
    api = TestClient(create_app(svc.rt.settings, svc.rt))
    r = api.post("/api/v1/dr-events/oadr2:EV-INV/confirm", headers=headers(keys["operator"]))
    assert r.status_code == 200, r.text
    until(lambda: vtn.opts_of("EV-INV")[-1:] == ["optIn"], "the optIn after confirmation", 10)
    # The REST view of the event is the same as for any event.
    got = api.get("/api/v1/dr-events/oadr2:EV-INV", headers=headers(keys["viewer"])).json()
    assert got["next_step"]["state"] == "in_force"


def test_reports_carry_the_meter_and_the_offer(ven_of, vtn):
    svc, _ = ven_of()
    svc.meter(1234.5)
    until(
        lambda: all(vtn.reports.get(r) for r in ("park", "park.import_min", "park.import_max")),
        "reports of every resource",
        15,
    )
    cur = svc.rt.current
    off = offer(cur.problem, cur.plan, cur.version)
    k = off.index(svc.rt.clock.now())
    until(lambda: vtn.reports["park"][-1][1] == pytest.approx(1234.5), "the metered value", 10)
    assert vtn.reports["park.import_min"][-1][1] == pytest.approx(off.p_import_min_kw[k], abs=0.01)
    assert vtn.reports["park.import_max"][-1][1] == pytest.approx(off.p_import_max_kw[k], abs=0.01)


def test_a_vtn_that_goes_away_and_returns(ven_of, vtn):
    svc, ven = ven_of()
    start, length = _window(svc)
    vtn.add_event("EV-A", _intervals(start, length, -80.0))
    until(lambda: vtn.opts_of("EV-A"), "the first event's opt", 10)
    until(lambda: ven.vtn_reachable, "a successful poll", 10)
    vtn.stop()
    until(lambda: not ven.vtn_reachable, "the VEN to notice", 10)
    assert _stored(svc, "oadr2:EV-A")["status"] == "confirmed"  # what is in force stays
    v = svc.version
    vtn.start()
    until(lambda: ven.vtn_reachable, "the VEN to reach the VTN again", 10)
    vtn.add_event("EV-B", _intervals(start + timedelta(hours=1), length, -60.0))
    until(lambda: vtn.opts_of("EV-B") == ["optIn"], "the event after the VTN returned", 10)
    assert _stored(svc, "oadr2:EV-B")["status"] == "confirmed"
    svc.wait_version_above(v, 10)
