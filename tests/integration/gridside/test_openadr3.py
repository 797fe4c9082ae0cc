"""The OpenADR 3 VEN against the small VTN of the test suite (``vtn3.py``, from the 3.0.1
schema) over real HTTP: OAuth2 client credentials, an event with intervals and payloads
becomes a DR event through the service's one path and is re-solved within a poll period; a
modification (new ``modificationDateTime``) updates it; a deleted event is cancelled; a call
the park cannot hold and a price event are opted out in the report; the report carries the
offer per interval; a VTN that goes away and returns. Subscriptions: with a 30 s poll an
event, its update and its deletion reach the park by notification within a couple of
seconds; a callback without the VEN's bearer token is refused and changes nothing; a VTN
without subscriptions means polling; the ``subscribe`` section's checks."""

from __future__ import annotations

import logging
import time
from datetime import timedelta

import httpx
import pytest

from tests.integration.gridside.conftest import until
from tests.integration.gridside.vtn3 import Vtn3
from vpp.errors import UserError
from vpp.gridside import config as gridside_config
from vpp.gridside.offers import offer
from vpp.gridside.openadr3 import OpenAdr3Config, OpenAdr3Ven, SubscribeConfig, parse_duration
from vpp.plan.prepare import horizon_for
from vpp.store import repo

POLL_S = 0.5
SAFETY_POLL_S = 30.0  # with subscriptions: what arrives sooner came by notification
WEBHOOK = SubscribeConfig(listen_host="127.0.0.1", listen_port=0, poll_s=SAFETY_POLL_S)
FAST_S = 3.0  # "within a couple of seconds"


@pytest.fixture
def vtn():
    v = Vtn3()
    v.url = v.start()
    yield v
    v.close()


@pytest.fixture
def ven_of(service, vtn):
    made = []

    def make(at=None, **cfg):
        svc = service()
        cfg = {"poll_s": POLL_S, **cfg}
        ven = OpenAdr3Ven(
            svc.rt,
            OpenAdr3Config(
                vtn_url=(at or vtn).url, client_id="ven-1", client_secret="s3cret", **cfg
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


# --- subscriptions ----------------------------------------------------------------------
def test_notifications_bring_event_update_and_delete_at_once(ven_of, vtn):
    pid = vtn.add_program("peak-2026")
    svc, ven = ven_of(subscribe=WEBHOOK)
    until(lambda: ven.subscriptions.get(pid), "the subscription", 5)
    (sub,) = vtn.subscriptions.values()
    assert sub["clientName"] == "park-vpp" and sub["programID"] == pid
    (oo,) = sub["objectOperations"]
    assert oo["objects"] == ["EVENT"] and sorted(oo["operations"]) == ["DELETE", "POST", "PUT"]
    assert oo["callbackUrl"] == ven.callback_url and len(oo["bearerToken"]) >= 32
    polls = ven.polls
    # Created at the VTN: in the park's table within a couple of seconds, with no poll.
    _, ivs = _intervals(svc, "DISPATCH_SETPOINT_RELATIVE", [-80.0])
    t0 = time.monotonic()
    eid = vtn.add_event(pid, ivs)
    until(lambda: _stored(svc, f"oadr3:{eid}"), "the event by notification", FAST_S)
    assert time.monotonic() - t0 < FAST_S
    row = _stored(svc, f"oadr3:{eid}")
    assert row["status"] == "confirmed" and row["body"]["requested_kw"] == pytest.approx(80.0)
    until(lambda: vtn.reports_of(eid), "the report", 10)
    # Updated, then deleted: each by notification.
    _, ivs2 = _intervals(svc, "DISPATCH_SETPOINT_RELATIVE", [-40.0])
    vtn.update_event(eid, ivs2)
    until(
        lambda: _stored(svc, f"oadr3:{eid}")["body"]["requested_kw"] == 40.0,
        "the update by notification",
        FAST_S,
    )
    vtn.delete_event(eid)
    until(
        lambda: _stored(svc, f"oadr3:{eid}")["status"] == "cancelled",
        "the deletion by notification",
        FAST_S,
    )
    assert ven.polls == polls, "a poll ran: the notifications were not what delivered"
    assert ven.notifications == 3
    assert [(op, st) for _, op, _, st in vtn.notified] == [
        ("POST", 200),
        ("PUT", 200),
        ("DELETE", 200),
    ]
    # Stopped: the subscription is deleted at the VTN.
    ven.stop()
    assert vtn.subscriptions == {}


def test_a_callback_without_the_token_is_refused(ven_of, vtn):
    pid = vtn.add_program("peak")
    svc, ven = ven_of(subscribe=WEBHOOK)
    until(lambda: ven.subscriptions.get(pid), "the subscription", 5)
    _, ivs = _intervals(svc, "DISPATCH_SETPOINT_RELATIVE", [-70.0])
    forged = {
        "objectType": "EVENT",
        "operation": "POST",
        "object": {
            "id": "forged-1",
            "objectType": "EVENT",
            "programID": pid,
            "createdDateTime": svc.rt.clock.now().isoformat(),
            "modificationDateTime": svc.rt.clock.now().isoformat(),
            "intervals": ivs,
        },
    }
    for headers, status in (
        ({}, 401),
        ({"Authorization": "Bearer not-the-token"}, 403),
        ({"Authorization": "Basic dmVuLTE6czNjcmV0"}, 401),
    ):
        r = httpx.post(ven.callback_url, json=forged, headers=headers, timeout=5)
        assert r.status_code == status
    # A malformed notification with the right token: 400, nothing queued.
    token = vtn.subscriptions[ven.subscriptions[pid]]["objectOperations"][0]["bearerToken"]
    r = httpx.post(ven.callback_url, json={"objectType": "EVENT"}, timeout=5,
                   headers={"Authorization": f"Bearer {token}"})  # fmt: skip
    assert r.status_code == 400
    # Nothing changed: a real event afterwards arrives, the forged one never does.
    eid = vtn.add_event(pid, ivs)
    until(lambda: _stored(svc, f"oadr3:{eid}"), "a real event by notification", FAST_S)
    assert _stored(svc, "oadr3:forged-1") is None
    assert ven.notifications == 1 and "forged-1" not in ven.seen


def test_a_subscription_the_vtn_lost_is_renewed(ven_of, vtn):
    pid = vtn.add_program("peak")
    fast = SubscribeConfig(listen_host="127.0.0.1", listen_port=0, poll_s=POLL_S)
    svc, ven = ven_of(subscribe=fast)
    first = until(lambda: ven.subscriptions.get(pid), "the subscription", 5)
    with vtn.cond:
        vtn.subscriptions.clear()  # a VTN restarted without its subscriptions
    until(
        lambda: ven.subscriptions.get(pid) not in (None, first) and vtn.subscriptions,
        "a new subscription after the next poll",
        5,
    )
    assert vtn.subscription_posts == 2
    _, ivs = _intervals(svc, "SIMPLE", [1])
    eid = vtn.add_event(pid, ivs)
    until(lambda: _stored(svc, f"oadr3:{eid}"), "the event", FAST_S)
    until(lambda: [n for n in vtn.notified if n[2] == eid], "its notification", FAST_S)
    assert [n[3] for n in vtn.notified if n[2] == eid] == [200]


def test_a_vtn_without_subscriptions_means_polling(ven_of, caplog):
    bare = Vtn3(subscriptions=False)
    bare.url = bare.start()
    try:
        pid = bare.add_program("peak")
        with caplog.at_level(logging.INFO, logger="vpp.gridside.openadr3"):
            svc, ven = ven_of(at=bare, subscribe=WEBHOOK)
            until(lambda: not ven.subscriptions_supported, "the VEN to see no subscriptions", 5)
            _, ivs = _intervals(svc, "SIMPLE", [1])
            eid = bare.add_event(pid, ivs)
            until(lambda: _stored(svc, f"oadr3:{eid}"), "the event by polling", FAST_S)
            polls = ven.polls
            until(lambda: ven.polls >= polls + 2, "polling at poll_s", 5)
        assert ven.subscriptions == {} and ven.notifications == 0 and bare.notified == []
        said = [r for r in caplog.records if "offers no subscriptions" in r.getMessage()]
        assert len(said) == 1, "logged once"
    finally:
        bare.close()


def test_subscribe_section_checks(tmp_path):
    f = tmp_path / "gridside.yaml"

    def load(sub: str):
        f.write_text(f"openadr3:\n  vtn_url: http://127.0.0.1:1/oadr3\n  subscribe: {sub}\n")
        return gridside_config.load(f).openadr3.subscribe

    got = load("{listen_host: 127.0.0.1, listen_port: 0, poll_s: 120}")
    assert got == SubscribeConfig("127.0.0.1", 0, None, 120.0)
    got = load("{listen_host: 0.0.0.0, listen_port: 8443, public_url: 'https://ven.example/oadr3'}")
    assert got.public_url == "https://ven.example/oadr3" and got.poll_s == 60.0
    for sub, field_path in (
        ("yes", "openadr3.subscribe"),
        ("{listen_port: 8443}", "openadr3.subscribe.listen_host"),
        ("{listen_host: 127.0.0.1, listen_port: 70000}", "openadr3.subscribe.listen_port"),
        ("{listen_host: 127.0.0.1, listen_port: 'x'}", "openadr3.subscribe.listen_port"),
        ("{listen_host: 0.0.0.0}", "openadr3.subscribe.public_url"),
        ("{listen_host: 127.0.0.1, public_url: 'ftp://x'}", "openadr3.subscribe.public_url"),
        ("{listen_host: 127.0.0.1, poll_s: 0}", "openadr3.subscribe.poll_s"),
        ("{listen_host: 127.0.0.1, port: 1}", "openadr3.subscribe.port"),
    ):
        with pytest.raises(UserError) as err:
            load(sub)
        assert str(err.value).startswith(f"{f}: {field_path}"), str(err.value)
    assert gridside_config.load(_no_subscribe(f)).openadr3.subscribe is None


def _no_subscribe(f):
    f.write_text("openadr3:\n  vtn_url: http://127.0.0.1:1/oadr3\n")
    return f
