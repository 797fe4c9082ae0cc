"""The field driver's grid-point tracking loop against real peers on loopback: park-meter
readings through the real Mosquitto broker, battery corrections written to the pymodbus
server's vendor-map PCS (unit 3 of the ``modbus`` fixture: 100 kW charge, 120 kW discharge,
setpoint in W with discharge +) and read back from its registers. The ``modbus`` fixture
fails any test whose devices were written outside their limits."""

from __future__ import annotations

import json
import math
import time
import uuid
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import paho.mqtt.client as mqtt
import pytest
import yaml

from controllers.tracking import BatteryRoom, TrackingTarget
from tests.integration.field.peers import _s32, loopback_park
from vpp.drivers.field import FieldDriver
from vpp.park.config import load_site

T0 = datetime(2026, 7, 15, 12, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
STEP = timedelta(minutes=15)
P_SET = 40100  # the vendor PCS's setpoint register (W, + discharge)


def _target(cap=math.inf, floor=-300.0, aim=None, planned=0.0, lo=-120.0, hi=100.0, start=T0):
    room = BatteryRoom("pcs-1", planned, lo, hi)
    return TrackingTarget(start, start + STEP, 700.0, cap, floor, aim, (room,), ("test",))


def _until(pred, timeout_s: float = 3.0) -> bool:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.01)
    return pred()


class Clock:
    """The driver's clock: moves one second a reading, so readings are always fresh."""

    def __init__(self, now: datetime):
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def tick(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


class Rig:
    def __init__(self, drv: FieldDriver, unit, topic: str, pub, clock: Clock):
        self.drv, self.unit, self.topic, self.pub, self.clock = drv, unit, topic, pub, clock
        self.sent = 0

    def publish(self, p_kw: float, ts: datetime | None = None) -> None:
        """One park-meter reading, handed over to the driver's ingest before returning."""
        ts = ts or self.clock.tick()
        body = json.dumps({"ts": ts.isoformat(), "p_kw": p_kw})
        self.pub.publish(self.topic, body, qos=1).wait_for_publish(5)
        self.sent += 1
        assert self.drv.mqtt.wait_stored(self.sent, 5), self.drv.mqtt.stats

    def reading(self, p_kw: float, ts: datetime | None = None) -> None:
        """A reading, and whatever the loop writes for it written."""
        self.publish(p_kw, ts)
        assert _until(lambda: not self.drv.tracking_status()["write_in_flight"])

    def setpoint_kw(self) -> float:
        """The PCS's setpoint register, read back from the server (kW, load convention)."""
        return -self.unit.setpoint_w() / 1000.0

    def setpoints_written_kw(self) -> list[float]:
        return [-_s32(*v) / 1000.0 for a, v in self.unit.writes if a == P_SET]

    def active(self) -> dict:
        return self.drv.tracking_status()["active"]


@pytest.fixture
def rig(peers, modbus, mqtt_broker, tmp_path):
    tag = uuid.uuid4().hex[:10]
    path, topic, _ = loopback_park(tmp_path, modbus.port, chargers=0, tag=tag)
    doc = yaml.safe_load(path.read_text())
    for pv in doc["assets"]["pv_arrays"]:  # only the PCS on the link: nothing else orders
        pv.pop("endpoint")  # its writes (the ordering test races apply and the loop on it)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    clock = Clock(T0 + timedelta(minutes=5))
    drv = FieldDriver(load_site(path), clock=clock, ingest=lambda rows, source: len(rows))
    pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"meter-{tag}")
    pub.connect(*mqtt_broker)
    pub.loop_start()
    drv.start()
    try:
        assert drv.mqtt.connected.wait(10)
        assert drv.read_state(T0).stale_assets == frozenset()
        yield Rig(drv, modbus.units[3], topic, pub, clock)
    finally:
        pub.loop_stop()
        pub.disconnect()
        drv.close()


def test_a_reading_over_the_cap_discharges_the_battery_to_the_cap(rig):
    rig.drv.apply(T0, {"pcs-1": 0.0})
    rig.drv.track(T0, _target(cap=800.0))
    rig.reading(850.0)  # 50 kW over the cap, battery at its planned 0 kW
    assert rig.setpoint_kw() == pytest.approx(-50.0)  # discharges 50 kW: the meter at 800
    st = rig.drv.status["pcs-1"]
    assert st.sent_kw == pytest.approx(-50.0) and st.sent_for == T0 and not st.fault
    act = rig.active()
    assert act["corrections"] == 1 and act["last_correction_kw"] == {"pcs-1": -50.0}
    assert act["last_reading_kw"] == 850.0 and act["write_failure"] is None
    assert act["target"]["cap_kw"] == 800.0
    json.dumps(rig.drv.tracking_status())  # JSON-ready


def test_a_dr_aim_is_tracked_both_ways_and_no_correction_is_applied_twice(rig):
    rig.drv.apply(T0, {"pcs-1": 20.0})
    rig.drv.track(T0, _target(cap=1200.0, aim=500.0, planned=20.0))
    rig.reading(560.0)  # 60 kW above the aim with the battery charging 20 kW
    assert rig.setpoint_kw() == pytest.approx(-40.0)
    rig.reading(500.0)  # taken with the battery moved: at the aim, nothing more to do
    assert rig.setpoints_written_kw() == pytest.approx([20.0, -40.0])
    rig.reading(420.0)  # the load fell 80 kW: 20 kW below the aim without the correction
    assert rig.setpoint_kw() == pytest.approx(40.0)  # charges more than planned
    rig.reading(500.0)
    assert rig.setpoints_written_kw() == pytest.approx([20.0, -40.0, 40.0])
    assert rig.active()["corrections"] == 2 and rig.active()["readings_used"] == 4


def test_no_target_an_interval_over_stale_readings_and_the_deadband_write_nothing(rig):
    rig.drv.apply(T0, {"pcs-1": 0.0})
    before = rig.setpoints_written_kw()
    rig.drv.track(T0, None)
    rig.reading(2000.0)
    rig.drv.track(T0 + STEP, _target(cap=800.0))  # its interval is over
    rig.reading(2000.0)
    assert rig.drv.tracking_status()["active"] is None
    rig.drv.track(T0, _target(cap=800.0))
    rig.reading(800.5)  # inside the deadband
    rig.reading(2000.0, ts=T0 - timedelta(minutes=1))  # before the interval
    rig.reading(2000.0, ts=rig.clock.now + timedelta(minutes=5))  # far in the future
    rig.reading(2000.0, ts=rig.clock.now - timedelta(seconds=1))  # older than the last used
    assert rig.setpoints_written_kw() == before and rig.setpoint_kw() == 0.0
    act = rig.active()
    assert act["corrections"] == 0 and act["readings_used"] == 1 and act["readings_ignored"] == 3
    assert act["last_reading_kw"] == 800.5


def test_extreme_readings_never_leave_the_room_nor_the_devices_limits(rig):
    rig.drv.apply(T0, {"pcs-1": 0.0})
    rig.drv.track(T0, _target(cap=800.0, lo=-60.0, hi=30.0))  # a room inside the device's
    rig.reading(1e5)
    assert rig.setpoint_kw() == pytest.approx(-60.0)
    rig.reading(-1e5)  # far below the export floor: charge, at most the room's 30 kW
    assert rig.setpoint_kw() == pytest.approx(30.0)
    rig.drv.apply(T0, {"pcs-1": 0.0})
    rig.drv.track(T0, _target(cap=800.0, lo=-500.0, hi=500.0))  # a room beyond the device
    rig.reading(1e6)
    assert rig.setpoint_kw() == pytest.approx(-120.0)  # the PCS's own discharge limit
    rig.reading(-1e6)
    assert rig.setpoint_kw() == pytest.approx(100.0)  # and its charge limit
    assert rig.drv.status["pcs-1"].clipped >= 2
    assert all(-120.0 <= p <= 100.0 for p in rig.setpoints_written_kw())


def test_a_failed_write_is_recorded_and_a_faulted_battery_is_left_out(rig):
    rig.drv.apply(T0, {"pcs-1": 0.0})
    rig.drv.track(T0, _target(cap=800.0))
    rig.unit.refuse_writes = True
    rig.reading(900.0)
    act = rig.active()
    assert act["corrections"] == 0 and "exception reply" in act["write_failure"]
    assert rig.drv.status["pcs-1"].write_fault  # stale for the next cycle: held safe
    rig.unit.refuse_writes = False
    rig.reading(950.0)  # its device is faulted: left out until a cycle reaches it again
    assert rig.active()["skipped_faulted"] == ["pcs-1"] and rig.setpoint_kw() == 0.0


def test_after_apply_of_the_next_interval_no_late_correction_overwrites_it(rig):
    rig.drv.apply(T0, {"pcs-1": 0.0})
    rig.drv.track(T0, _target(cap=800.0))
    rig.unit.delay_s = 0.2  # a slow gateway: a tracked write takes about 0.8 s
    rig.publish(900.0)  # its correction (-100 kW) is in flight ...
    assert rig.drv.tracking_status()["write_in_flight"]
    rig.publish(950.0)  # ... and this one's (-120 kW) waits for it, coalesced
    t1 = T0 + STEP
    rig.clock.now = t1 + timedelta(seconds=1)
    rig.drv.apply(t1, {"pcs-1": 10.0})  # the next cycle: charge 10 kW
    assert rig.setpoint_kw() == pytest.approx(10.0)
    rig.unit.delay_s = 0.0
    rig.reading(2000.0, ts=t1 - timedelta(seconds=30))  # a late reading of the old interval
    time.sleep(0.3)
    written = rig.setpoints_written_kw()
    assert written[-1] == pytest.approx(10.0) and rig.setpoint_kw() == pytest.approx(10.0)
    assert -120.0 not in written  # the coalesced correction of interval k was dropped
    assert written.index(10.0) == len(written) - 1  # nothing of interval k after apply(k+1)
    status = rig.drv.tracking_status()
    assert status["active"] is None and status["previous"]["start"] == T0.isoformat()
    # the write in flight ended before the new cycle's began: not cut by it (read-back)
    assert status["previous"]["corrections"] == 1 and status["previous"]["write_failure"] is None
    assert written == pytest.approx([0.0, -100.0, 10.0])
    assert rig.drv.status["pcs-1"].sent_for == t1


def test_a_reading_the_runtime_refuses_moves_no_battery_and_sets_no_peak(rig):
    """Only readings the runtime's checks accept feed the loop and the month's peak (the
    ingest says which it refused, as Runtime.ingest_checked does)."""
    from vpp.park.telemetry_checks import Refusal
    from vpp.runtime.service import IngestReport

    def ingest(rows, source):
        bad = tuple(
            Refusal(i, r["asset"], "p_kw", "p_kw: beyond the park's range")
            for i, r in enumerate(rows)
            if (r.get("p_kw") or 0.0) > 1e4
        )
        return IngestReport(len(rows) - len(bad), bad)

    rig.drv.bind_ingest(ingest)
    rig.drv.apply(T0, {"pcs-1": 0.0})
    rig.drv.track(T0, _target(cap=800.0))
    rig.reading(1e6)
    assert rig.setpoint_kw() == pytest.approx(0.0)
    assert rig.drv.peak.peak_kw < 1e4 and rig.active()["readings_used"] == 0
    rig.reading(850.0)  # a plausible one still works
    assert rig.setpoint_kw() == pytest.approx(-50.0)
