"""The IEC 60870-5-104 outstation against a real ``c104`` client on loopback: general
interrogation, cyclic and spontaneous reports, a set-point inside the park's flexibility
(positive ACT_CON, a pre-agreed DR event in force, a re-solve, the read-back and the tracking
error reported) and outside it (negative ACT_CON, nothing changes), a release, and a link
that drops and returns."""

# No "from __future__ import annotations": c104 checks the callbacks' annotations as objects.

import contextlib
import threading
from datetime import datetime, timedelta

import c104
import numpy as np
import pytest

from tests.integration.gridside.conftest import TZ, free_port, until
from vpp.gridside.iec104 import IOA, IOA_RELEASE, IOA_SETPOINT, Iec104Config, Iec104Outstation
from vpp.gridside.intake import IN_FORCE
from vpp.gridside.offers import offer
from vpp.plan.prepare import horizon_for
from vpp.store import repo

CA = 7


class LinkProxy:
    """A TCP relay between the dispatch centre and the outstation: the link that drops and
    returns is this relay's sockets closing, as a network would drop them. (c104's own
    ``Connection.disconnect()`` / ``Client.stop()`` join its receive thread while holding the
    GIL: a raw-frame callback arriving at that moment deadlocked the whole test worker.)"""

    def __init__(self, target_port: int):
        import socket

        self.target = target_port
        self.srv = socket.create_server(("127.0.0.1", 0))
        self.port = self.srv.getsockname()[1]
        self.socks: list = []
        self.lock = threading.Lock()
        self.up = threading.Event()
        self.up.set()
        self.closed = False
        threading.Thread(target=self._accept, daemon=True, name="link-proxy").start()

    def _accept(self) -> None:
        import socket

        while not self.closed:
            try:
                a, _ = self.srv.accept()
            except OSError:
                return
            if not self.up.is_set():
                a.close()
                continue
            b = socket.create_connection(("127.0.0.1", self.target))
            with self.lock:
                self.socks += [a, b]
            for x, y in ((a, b), (b, a)):
                threading.Thread(target=self._pipe, args=(x, y), daemon=True).start()

    def _pipe(self, src, dst) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        for x in (src, dst):
            with contextlib.suppress(OSError):
                x.close()

    def drop(self) -> None:
        """Close every relayed connection and refuse new ones until :meth:`restore`."""
        import socket

        self.up.clear()
        with self.lock:
            socks, self.socks = self.socks, []
        for x in socks:
            with contextlib.suppress(OSError):
                x.shutdown(socket.SHUT_RDWR)
            x.close()

    def restore(self) -> None:
        self.up.set()

    def close(self) -> None:
        self.closed = True
        self.drop()
        self.srv.close()


class Centre:
    """A dispatch centre's master station (c104 client) with every point of the park."""

    def __init__(self, port: int):
        self.client = c104.Client(tick_rate_ms=50, command_timeout_ms=3000)
        self.con = self.client.add_connection(ip="127.0.0.1", port=port, init=c104.Init.NONE)
        st = self.con.add_station(common_address=CA)
        # Per IOA: (value, cause, valid, substituted) as received.
        self.got: dict[int, list[tuple[float, c104.Cot, bool, bool]]] = {}
        self.changed = threading.Condition()
        self.points = {}
        for ioa in IOA.values():
            p = st.add_point(io_address=ioa, type=c104.Type.M_ME_NC_1)
            p.on_receive(callable=self._on_value)
            self.points[ioa] = p
        self.setpoint = st.add_point(io_address=IOA_SETPOINT, type=c104.Type.C_SE_NC_1)
        self.release = st.add_point(io_address=IOA_RELEASE, type=c104.Type.C_SC_NA_1)
        self.raw: list[str] = []
        self.con.on_receive_raw(callable=self._on_raw)
        self.client.start()

    def _on_raw(self, connection: c104.Connection, data: bytes) -> None:
        with self.changed:
            self.raw.append(c104.explain_bytes(apdu=data))
            self.changed.notify_all()

    def _await_raw(self, since: int, *parts: str, timeout_s: float = 10.0) -> str:
        def hit():
            return next((r for r in self.raw[since:] if all(p in r for p in parts)), None)

        return until(hit, " and ".join(parts), timeout_s)

    def interrogate(self) -> None:
        """A general interrogation, judged on the wire: its ACT_CON must be positive and its
        ACT_TERM arrive. (``interrogation(wait_for_response=True)`` sometimes misses a reply
        that comes back faster than the client starts waiting on loopback.)"""
        n = len(self.raw)
        self.con.interrogation(common_address=CA, wait_for_response=False)
        con = self._await_raw(n, "C_IC_NA_1", "ACTIVATION_CON")
        assert "POSITIVE" in con, con
        self._await_raw(n, "C_IC_NA_1", "ACTIVATION_TERMINATION")

    def _on_value(
        self,
        point: c104.Point,
        previous_info: c104.Information,
        message: c104.IncomingMessage,
    ) -> c104.ResponseState:
        with self.changed:
            good = not point.quality.value & c104.Quality.Invalid.value
            subst = bool(point.quality.value & c104.Quality.Substituted.value)
            row = (float(point.value), message.cot, good, subst)
            self.got.setdefault(point.io_address, []).append(row)
            self.changed.notify_all()
        return c104.ResponseState.SUCCESS

    def open(self) -> None:
        until(
            lambda: self.con.state in (c104.ConnectionState.OPEN_MUTED, c104.ConnectionState.OPEN),
            "the link to open",
            10,
        )
        assert self.con.unmute()
        until(lambda: not self.con.is_muted, "STARTDT to be confirmed", 10)

    def last(self, name: str, cot: c104.Cot | None = None):
        rows = [r for r in self.got.get(IOA[name], []) if cot is None or r[1] == cot]
        return rows[-1] if rows else None

    def wait_for(self, name: str, pred, what: str, timeout_s: float = 10.0):
        return until(lambda: (r := self.last(name)) is not None and pred(r) and r, what, timeout_s)

    def send_setpoint(self, p_kw: float) -> bool:
        """Send a set-point and return what its ACT_CON said on the wire (True: positive)."""
        n = len(self.raw)
        self.setpoint.value = float(p_kw)
        self.setpoint.transmit(cause=c104.Cot.ACTIVATION)
        con = self._await_raw(n, "C_SE_NC_1", "ACTIVATION_CON")
        return "POSITIVE" in con

    def stop(self) -> None:
        self.client.stop()


@pytest.fixture
def station(service):
    yield from _station(service())


@pytest.fixture
def valley_station(service):
    """The station at 05:07 (China time) today: the valley, where the small park's plan
    charges its battery and a set-point that cuts import costs it demand charge later."""
    at = datetime.now(TZ).replace(hour=5, minute=7, second=0, microsecond=0)
    yield from _station(service(at=at))


def _station(svc):
    out = Iec104Outstation(
        svc.rt,
        Iec104Config(port=free_port(), common_address=CA, cyclic_s=0.5, refresh_s=0.1),
    )
    out.start()
    link = LinkProxy(out.config.port)
    centre = Centre(link.port)
    centre.link = link
    centre.open()
    yield svc, out, centre
    link.drop()  # no frame, no callback while c104 stops (see LinkProxy)
    centre.stop()
    link.close()
    out.stop()


def _hold_mask(svc, out):
    cur = svc.rt.current
    off = offer(cur.problem, cur.plan, cur.version)
    start = horizon_for(svc.rt.site, svc.rt.clock.now()).start
    return off, off.mask(start, start + timedelta(minutes=out.config.hold_minutes))


def test_interrogation_sends_every_value_from_the_offer(station):
    svc, out, centre = station
    centre.interrogate()
    until(lambda: all(centre.last(n, c104.Cot.INTERROGATED_BY_STATION) for n in IOA), "all IOAs")
    off, _ = _hold_mask(svc, out)
    k = off.index(svc.rt.clock.now())
    v = {n: centre.last(n, c104.Cot.INTERROGATED_BY_STATION) for n in IOA}
    assert v["p_import_min_kw"][0] == pytest.approx(off.p_import_min_kw[k], abs=0.01)
    assert v["p_import_max_kw"][0] == pytest.approx(off.p_import_max_kw[k], abs=0.01)
    assert v["flex_up_kw"][0] == pytest.approx(off.up_kw[k], abs=0.01)
    assert v["flex_down_kw"][0] == pytest.approx(off.down_kw[k], abs=0.01)
    assert v["plan_p_kw"][0] == pytest.approx(off.plan_p_net_kw[k], abs=0.01)
    conn = svc.rt.site.connection
    assert v["import_limit_kw"][0] == pytest.approx(
        min(conn.import_max_kw, conn.transformer_p_max_kw), abs=0.01
    )
    bats = svc.rt.current.problem.batteries
    soc = sum(b.e_init_kwh for b in bats) / sum(b.spec.e_kwh for b in bats)
    assert v["battery_soc_pct"][0] == pytest.approx(100 * soc, abs=0.01)
    assert v["q_kvar"][0] > 0 and v["q_kvar"][3]  # inductive loads; estimated: substituted
    # No meter reading yet, no set-point: those points say so (quality invalid).
    for name in ("p_kw", "setpoint_kw", "tracking_error_kw"):
        assert v[name][2] is False, name
    # Cyclic reports follow without asking.
    centre.wait_for("flex_up_kw", lambda r: r[1] == c104.Cot.PERIODIC, "a periodic report")


def test_setpoint_inside_the_flexibility_is_confirmed_and_planned(station):
    svc, out, centre = station
    off, m = _hold_mask(svc, out)
    lo, hi = off.p_import_min_kw[m].max(), off.p_import_max_kw[m].min()
    assert lo < hi
    target = float(lo + 0.3 * (hi - lo))
    before = svc.version
    assert centre.send_setpoint(target) is True  # positive ACT_CON
    assert out.setpoint is not None and out.setpoint.p_kw == pytest.approx(target)
    row = out.intake.row(out.setpoint.event_id)
    assert row["status"] in IN_FORCE and row["body"]["contract_type"] == "pre_agreed"
    svc.wait_version_above(before)
    # The new plan carries the event: its import over the hold is aimed at the set-point.
    cur = svc.rt.current
    assert out.setpoint.event_id in cur.plan.dr_decisions or any(
        r.event_id == out.setpoint.event_id for r in cur.problem.dr_rows
    )
    k = np.array([out.setpoint.start <= t < out.setpoint.end for t in cur.problem.horizon.times()])
    assert abs(float(np.mean(cur.plan.p_net_kw[k])) - target) < 0.25 * max(hi - lo, 50.0)
    _assert_binding(cur.plan, out.setpoint.event_id)
    # Read-back and the tracking error once the meter reports.
    centre.wait_for("setpoint_kw", lambda r: r[2] and abs(r[0] - target) < 0.01, "read-back")
    svc.meter(target + 42.0)
    centre.wait_for(
        "tracking_error_kw", lambda r: r[2] and abs(r[0] - 42.0) < 0.01, "the tracking error"
    )
    centre.wait_for("p_kw", lambda r: r[2] and abs(r[0] - target - 42.0) < 0.01, "measured P")
    # A release cancels the event and the points say no set-point is in force.
    centre.release.value = True
    n = len(centre.raw)
    centre.release.transmit(cause=c104.Cot.ACTIVATION)
    assert "POSITIVE" in centre._await_raw(n, "C_SC_NA_1", "ACTIVATION_CON")
    assert out.intake.status(row["event_id"]) == "cancelled"
    centre.wait_for("setpoint_kw", lambda r: not r[2], "no set-point in force")


def _assert_binding(plan, event_id: str) -> None:
    """The set-point was followed as a command: never weighed against the bill."""
    d = plan.dr_decisions.get(event_id)
    assert d is not None and d.followed and not d.weighed, d
    assert "binding" in d.says, d.says


def test_a_confirmed_setpoint_is_followed_though_it_costs_the_bill(valley_station):
    """A set-point the outstation confirmed (positive ACT_CON) is a promise to the dispatch
    centre: in the valley, where cutting import now costs a higher peak later (this park's
    plan weighed it at about 12,600 CNY of demand charge against 148 CNY of subsidy and gave
    it up before set-points were binding), the plan still aims at it."""
    svc, out, centre = valley_station
    off, m = _hold_mask(svc, out)
    lo, hi = off.p_import_min_kw[m].max(), off.p_import_max_kw[m].min()
    target = float(lo + 0.3 * (hi - lo))
    assert target < float(off.plan_p_net_kw[m].mean()) - 500.0  # a real cut from the plan
    before = svc.version
    assert centre.send_setpoint(target) is True
    svc.wait_version_above(before)
    cur = svc.rt.current
    k = np.array([out.setpoint.start <= t < out.setpoint.end for t in cur.problem.horizon.times()])
    assert abs(float(np.mean(cur.plan.p_net_kw[k])) - target) < 0.25 * max(hi - lo, 50.0)
    _assert_binding(cur.plan, out.setpoint.event_id)


def test_setpoint_outside_the_flexibility_is_refused(station):
    svc, out, centre = station
    off, m = _hold_mask(svc, out)
    with svc.rt.engine.connect() as conn:
        n_before = len(repo.list_dr(conn))
    version = svc.version
    above = float(off.p_import_max_kw[m].min()) + 250.0
    below = float(off.p_import_min_kw[m].max()) - 250.0
    assert centre.send_setpoint(above) is False  # negative ACT_CON
    assert centre.send_setpoint(below) is False
    assert centre.send_setpoint(float("nan")) is False
    assert out.setpoint is None
    assert "above the park's highest import" in out.refusals[0]
    assert "below the park's lowest import" in out.refusals[1]
    with svc.rt.engine.connect() as conn:
        assert len(repo.list_dr(conn)) == n_before  # nothing stored
    assert svc.version == version  # nothing re-solved


def test_a_new_setpoint_replaces_the_one_in_force(station):
    svc, out, centre = station
    off, m = _hold_mask(svc, out)
    lo, hi = off.p_import_min_kw[m].max(), off.p_import_max_kw[m].min()
    assert centre.send_setpoint(float(lo + 0.25 * (hi - lo)))
    first = out.setpoint.event_id
    assert centre.send_setpoint(float(lo + 0.75 * (hi - lo)))
    with svc.rt.engine.connect() as conn:
        history = [(h["status"], h["actor"], h["note"]) for h in repo.dr_history(conn, first)]
    assert out.intake.status(first) == "cancelled", history
    assert out.intake.status(out.setpoint.event_id) in IN_FORCE


def test_link_drops_and_returns(station):
    svc, out, centre = station
    off, m = _hold_mask(svc, out)
    lo, hi = off.p_import_min_kw[m].max(), off.p_import_max_kw[m].min()
    target = float(0.5 * (lo + hi))
    assert centre.send_setpoint(target)
    until(lambda: out.open_connections == 1, "the outstation to see the link")
    centre.link.drop()  # the network drops the link
    until(lambda: out.open_connections == 0, "the outstation to see the link drop")
    until(
        lambda: (
            centre.con.state not in (c104.ConnectionState.OPEN_MUTED, c104.ConnectionState.OPEN)
        ),
        "the centre to see the link drop",
    )
    # The set-point holds while the link is down (it is a stored DR event with its hold).
    assert out.setpoint is not None and out.intake.status(out.setpoint.event_id) in IN_FORCE
    centre.got.clear()
    centre.link.restore()
    centre.con.connect()
    centre.open()
    centre.interrogate()
    got = centre.wait_for("setpoint_kw", lambda r: r[2], "the read-back after the link returned")
    assert got[0] == pytest.approx(target, abs=0.01)
    assert centre.send_setpoint(target + 1.0)  # and commands work again
