"""Modbus TCP / SunSpec adapters against a real pymodbus server holding SunSpec register
images (two inverters, a SunSpec storage PCS) and a vendor-map PCS: readings in the park's
units and signs, limits written and read back, nothing written outside a device's limits
(the ``modbus`` fixture fails a test whose devices saw such a write), a device that stops
answering or answers with an exception marked, held safe, and the others served."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from tests.integration.field.peers import loopback_park
from vpp.drivers import register_maps, sunspec
from vpp.drivers.field import FieldDriver
from vpp.park.config import load_site

INV = "configs/registers/sunspec_inverter.yaml"
STO = "configs/registers/sunspec_storage.yaml"
VEN = "configs/registers/vendor_pcs_example.yaml"
T0 = datetime(2026, 7, 15, 12, 0, tzinfo=ZoneInfo("Asia/Shanghai"))


def _dev(peers, modbus, unit, path, rng, timeout_s=0.5):
    link = sunspec.ModbusLink("127.0.0.1", modbus.port, timeout_s)
    return sunspec.make_device(f"unit{unit}", link, unit, rng, register_maps.load(path))


def test_the_images_read_alike_by_pysunspec2s_own_client(peers, modbus):
    """pysunspec2's Modbus client (its own protocol code) scans the server: the register
    images are real SunSpec, and the adapter reads what it reads."""
    from sunspec2.modbus.client import SunSpecModbusClientDeviceTCP

    ref = SunSpecModbusClientDeviceTCP(slave_id=1, ipaddr="127.0.0.1", ipport=modbus.port)
    ref.scan()
    assert {1, 103, 120, 123} <= set(ref.models)
    w_ref = ref.models[103][0].W.cvalue  # W x 10^W_SF
    rating_ref = ref.models[120][0].WRtg.cvalue
    ref.close()
    dev = _dev(peers, modbus, 1, INV, (-100.0, 0.0))
    got = peers.run(dev.read())
    assert got.p_kw == pytest.approx(-w_ref / 1000.0)  # generation is - here
    assert got.p_range_kw == (pytest.approx(-rating_ref / 1000.0), 0.0)
    ref2 = SunSpecModbusClientDeviceTCP(slave_id=2, ipaddr="127.0.0.1", ipport=modbus.port)
    ref2.scan()
    assert {701, 702, 704} <= set(ref2.models)
    ref2.close()


@pytest.mark.parametrize("unit, model", [(1, 123), (2, 704)])
def test_inverter_limit_is_written_read_back_and_followed(peers, modbus, unit, model):
    sim = modbus.units[unit]
    rating_kw = sim.rating_w / 1000.0
    dev = _dev(peers, modbus, unit, INV, (-rating_kw, 0.0))
    before = peers.run(dev.read())
    assert before.p_kw == pytest.approx(-sim.available_w / 1000.0)
    wr = peers.run(dev.write(-0.3 * rating_kw))
    assert wr.sent_kw == pytest.approx(-0.3 * rating_kw) and not wr.clipped
    assert sim.limit_pct() == pytest.approx(30.0)
    assert peers.run(dev.read()).p_kw == pytest.approx(-0.3 * rating_kw, abs=0.01)
    # a limit beyond what the inverter can do is clipped to its rating, never written over
    wr = peers.run(dev.write(-5 * rating_kw))
    assert wr.clipped and sim.limit_pct() == pytest.approx(100.0)
    peers.run(dev.write(None))  # released: uncurtailed
    assert sim.limit_pct() is None
    assert peers.run(dev.read()).p_kw == pytest.approx(-sim.available_w / 1000.0)
    assert f"{model}:" in wr.detail


@pytest.mark.parametrize("unit, path", [(3, VEN), (4, STO)])
def test_storage_setpoint_within_the_devices_and_the_assets_limits(peers, modbus, unit, path):
    sim = modbus.units[unit]
    dev = _dev(peers, modbus, unit, path, (-150.0, 150.0))
    r = peers.run(dev.read())
    cha, dis = (100.0, 120.0) if unit == 3 else (60.0, 80.0)
    assert r.p_range_kw == (pytest.approx(-dis), pytest.approx(cha))
    assert r.soc_frac == pytest.approx(0.55 if unit == 3 else 0.40)
    wr = peers.run(dev.write(-40.0))  # discharge 40 kW: + 40,000 W on the device
    assert wr.sent_kw == pytest.approx(-40.0) and sim.setpoint_w() == 40_000
    assert peers.run(dev.read()).p_kw == pytest.approx(-40.0)
    wr = peers.run(dev.write(500.0))  # more than the device charges
    assert wr.clipped and wr.sent_kw == pytest.approx(cha)
    assert sim.setpoint_w() == -cha * 1000
    narrow = _dev(peers, modbus, unit, path, (-10.0, 5.0))  # the asset's own range
    wr = peers.run(narrow.write(-50.0))
    assert wr.clipped and wr.sent_kw == pytest.approx(-10.0)
    assert sim.setpoint_w() == 10_000


def test_silent_device_times_out_and_an_exception_reply_fails(peers, modbus):
    dev = _dev(peers, modbus, 3, VEN, (-100.0, 100.0), timeout_s=0.3)
    peers.run(dev.read())
    modbus.units[3].silent = True
    t0 = time.perf_counter()
    with pytest.raises(sunspec.DeviceError, match="no answer"):
        peers.run(dev.read())
    assert time.perf_counter() - t0 < 2.0
    modbus.units[3].silent = False
    inv = _dev(peers, modbus, 1, INV, (-100.0, 0.0))
    modbus.units[1].refuse_writes = True
    with pytest.raises(sunspec.DeviceError, match="exception reply"):
        peers.run(inv.write(-10.0))
    modbus.units[1].refuse_writes = False
    assert peers.run(inv.write(-10.0)).sent_kw == pytest.approx(-10.0)


def test_field_driver_holds_a_silent_pcs_and_serves_the_others(peers, modbus, tmp_path):
    path, _, _ = loopback_park(tmp_path, modbus.port, chargers=0)
    site = load_site(path)
    drv = FieldDriver(site, clock=lambda: T0)
    drv.start()
    try:
        st = drv.read_state(T0)
        assert st.stale_assets == frozenset()
        assert st.battery_e_kwh["pcs-1"] == pytest.approx(0.55 * 400)
        rows = {r["asset"]: r for r in drv.telemetry(T0)}
        assert rows["pv-roof-a"]["p_kw"] == pytest.approx(-80.0)
        drv.apply(T0, {"pv-roof-a": -20.0, "pcs-1": 30.0})  # pv-roof-b: no setpoint, released
        assert modbus.units[1].limit_pct() == pytest.approx(20.0)
        assert modbus.units[3].setpoint_w() == -30_000
        assert {drv.status[n].sent_for for n in ("pv-roof-a", "pcs-1")} == {T0}
        modbus.units[3].silent = True
        at = T0 + timedelta(minutes=15)
        t0 = time.perf_counter()
        st = drv.read_state(at)
        assert st.stale_assets == frozenset({"pcs-1"})  # held safe by the next plan
        assert st.battery_e_kwh["pcs-1"] == pytest.approx(0.1 * 400)  # planned empty
        assert [a.subject for a in st.assumptions if a.quantity == "e_kwh"] == ["pcs-1"]
        drv.apply(at, {"pv-roof-a": -35.0, "pv-roof-b": -10.0, "pcs-1": 0.0})
        assert time.perf_counter() - t0 < 6.0
        assert modbus.units[1].limit_pct() == pytest.approx(35.0)  # the others got theirs
        assert modbus.units[2].limit_pct() == pytest.approx(20.0)
        assert drv.status["pv-roof-b"].sent_for == at
        h = drv.health()
        assert set(h["faults"]) == {"pcs-1"} and "answer" in h["faults"]["pcs-1"].lower()
        modbus.units[3].silent = False
        st = drv.read_state(at + timedelta(minutes=15))
        assert st.stale_assets == frozenset({"pcs-1"})  # its last command is still undelivered
        drv.apply(at + timedelta(minutes=15), {"pcs-1": 0.0})
        st = drv.read_state(at + timedelta(minutes=30))
        assert st.stale_assets == frozenset() and drv.health()["faults"] == {}
    finally:
        drv.close()
