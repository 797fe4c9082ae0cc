"""The OpenADR 3 VEN against the small VTN of the test suite (``vtn3.py``, from the 3.0.1
schema) over real HTTP: OAuth2 client credentials, an event with intervals and payloads
becomes a DR event through the service's one path and is re-solved within a poll period; a
modification (new ``modificationDateTime``) updates it; a deleted event is cancelled; a call
the park cannot hold and a price event are opted out in the report; the report carries the
offer per interval; a VTN that goes away and returns."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest

from tests.integration.gridside.conftest import until
from tests.integration.gridside.vtn3 import Vtn3
from vpp.gridside.offers import offer
from vpp.gridside.openadr3 import OpenAdr3Config, OpenAdr3Ven, parse_duration
from vpp.plan.prepare import horizon_for
from vpp.store import repo

POLL_S = 0.5


@pytest.fixture
def vtn():
    v = Vtn3()
    v.url = v.start()
    yield v
    v.stop()


@pytest.fixture
def ven_of(service, vtn):
    made = []

    def make(**cfg):
        svc = service()
        ven = OpenAdr3Ven(
            svc.rt,
            OpenAdr3Config(
                vtn_url=vtn.url, poll_s=POLL_S, client_id="ven-1", client_secret="s3cret", **cfg
            ),
        )
        ven.start()
        made.append(ven)
        until(lambda: ven.polls > 0, "the first poll", 10)
        return svc, ven

    yield make
    for ven in made:
        ven.stop()


def _intervals(svc, payload_type, values, k0=2, n=4):
    h = horizon_for(svc.rt.site, svc.rt.clock.now())
    start = h.start + k0 * h.step
    return start, [
        {
            "id": i,
            "intervalPeriod": {"start": (start + i * h.step).isoformat(), "duration": "PT15M"},
            "payloads": [{"type": payload_type, "values": [v]}],
        }
        for i, v in enumerate(values[:n] if len(values) >= n else values * n)
    ]


def _stored(svc, event_id):
    with svc.rt.engine.connect() as conn:
        return repo.get_dr(conn, event_id)


def test_event_update_delete_and_reports(ven_of, vtn):
    svc, _ = ven_of()
    pid = vtn.add_program("peak-2026", payloadDescriptors=[
        {"objectType": "EVENT_PAYLOAD_DESCRIPTOR", "payloadType": "DISPATCH_SETPOINT_RELATIVE",
         "units": "KW"}])  # fmt: skip
    start, ivs = _intervals(svc, "DISPATCH_SETPOINT_RELATIVE", [-120.0, -120.0, -60.0, -60.0])
    before = svc.version
    t0 = time.monotonic()
    eid = vtn.add_event(pid, ivs, eventName="evening peak")
    # Two asks (120 kW then 60 kW): two DR events, each with its window.
    until(lambda: _stored(svc, f"oadr3:{eid}.2"), "both DR events", 10)
    a, b = _stored(svc, f"oadr3:{eid}"), _stored(svc, f"oadr3:{eid}.2")
    assert a["body"]["requested_kw"] == pytest.approx(120.0)
    assert b["body"]["requested_kw"] == pytest.approx(60.0)
    assert a["status"] == b["status"] == "confirmed"
    step = timedelta(minutes=15)
    assert a["body"]["windows"] == [
        {"start": start.isoformat(), "end": (start + 2 * step).isoformat()}
    ]
    svc.wait_version_above(before, 10)
    assert time.monotonic() - t0 < POLL_S + 5.0
    # The report: opt, and the offer per interval of the event.
    until(lambda: vtn.reports_of(eid), "the VEN's report", 10)
    rep = vtn.reports_of(eid)[-1]
    assert rep["clientName"] == "park-vpp" and rep["programID"] == pid
    rows = rep["resources"][0]["intervals"]
    assert len(rows) == 4
    cur = svc.rt.current
    off = offer(cur.problem, cur.plan, cur.version)
    for row in rows:
        p = {x["type"]: x["values"][0] for x in row["payloads"]}
        assert p["OPT"] == "optIn"
        t = row["intervalPeriod"]["start"]
        k = off.index(__import__("datetime").datetime.fromisoformat(t))
        assert p["DOWN_REGULATION_AVAILABLE"] == pytest.approx(off.down_kw[k], abs=0.5)
        assert p["UP_REGULATION_AVAILABLE"] == pytest.approx(off.up_kw[k], abs=0.5)
        assert parse_duration(row["intervalPeriod"]["duration"]) == step
    # A modification: one ask over all four intervals, so the second DR event goes.
    _, ivs2 = _intervals(svc, "DISPATCH_SETPOINT_RELATIVE", [-90.0])
    vtn.update_event(eid, ivs2)
    until(lambda: _stored(svc, f"oadr3:{eid}")["body"]["requested_kw"] == 90.0, "the update", 10)
    assert _stored(svc, f"oadr3:{eid}.2")["status"] == "cancelled"
    # Deleted at the VTN: cancelled here.
    vtn.delete_event(eid)
    until(lambda: _stored(svc, f"oadr3:{eid}")["status"] == "cancelled", "the cancellation", 10)


def test_calls_the_park_does_not_take_are_opted_out(ven_of, vtn):
    svc, _ = ven_of()
    pid = vtn.add_program("capacity")
    cur = svc.rt.current
    off = offer(cur.problem, cur.plan, cur.version)
    start, ivs = _intervals(svc, "IMPORT_CAPACITY_LIMIT", [0.0])
    m = off.mask(start, start + timedelta(hours=1))
    cap = float(off.p_import_min_kw[m].max()) - 400.0  # below the lowest import it can hold
    _, ivs = _intervals(svc, "IMPORT_CAPACITY_LIMIT", [cap])
    eid = vtn.add_event(pid, ivs)
    until(lambda: vtn.reports_of(eid), "the report", 10)
    p = {
        x["type"]: x["values"][0]
        for x in vtn.reports_of(eid)[-1]["resources"][0]["intervals"][0]["payloads"]
    }
    assert p["OPT"] == "optOut"
    row = _stored(svc, f"oadr3:{eid}")
    assert row["status"] == "declined" and row["body"]["import_cap_kw"] == pytest.approx(cap)
    _, prices = _intervals(svc, "PRICE", [0.31])
    pe = vtn.add_event(pid, prices)
    until(lambda: vtn.reports_of(pe), "the report on a price event", 10)
    payloads = vtn.reports_of(pe)[-1]["resources"][0]["intervals"][0]["payloads"]
    assert {x["type"]: x["values"][0] for x in payloads}["OPT"] == "optOut"
    assert _stored(svc, f"oadr3:{pe}") is None


def test_a_vtn_that_goes_away_and_returns(ven_of, vtn):
    svc, ven = ven_of()
    pid = vtn.add_program("peak")
    _, ivs = _intervals(svc, "SIMPLE", [2])
    eid = vtn.add_event(pid, ivs)
    until(lambda: _stored(svc, f"oadr3:{eid}"), "the SIMPLE event", 10)
    row = _stored(svc, f"oadr3:{eid}")
    assert row["status"] == "confirmed" and row["body"]["requested_kw"] > 0
    port = int(vtn.url.rsplit(":", 1)[1])
    vtn.stop()
    until(lambda: not ven.vtn_reachable, "the VEN to notice", 10)
    assert _stored(svc, f"oadr3:{eid}")["status"] == "confirmed"  # nothing lost meanwhile
    # The VTN comes back on the same port (its state kept, tokens too).
    import uvicorn

    cfg = uvicorn.Config(vtn.app, host="127.0.0.1", port=port, log_level="warning")
    vtn.server = uvicorn.Server(cfg)
    vtn.thread = __import__("threading").Thread(target=vtn.server.run, daemon=True)
    vtn.thread.start()
    until(lambda: ven.vtn_reachable, "the VEN to reach the VTN again", 10)
    _, ivs2 = _intervals(svc, "DISPATCH_SETPOINT_RELATIVE", [-50.0], k0=6)
    e2 = vtn.add_event(pid, ivs2)
    until(lambda: _stored(svc, f"oadr3:{e2}"), "an event after the VTN returned", 10)
    assert _stored(svc, f"oadr3:{eid}")["status"] == "confirmed"
