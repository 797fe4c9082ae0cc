"""Fixtures of the field-device tests: a loop for the protocol peers, a pymodbus server
with two SunSpec inverters, a vendor-map PCS and a SunSpec storage PCS, and the loopback
park moved onto them. Every server binds an ephemeral port; every MQTT topic is the test's."""

from __future__ import annotations

import pytest

from tests.integration.field.peers import (
    ModbusPeer,
    PeerLoop,
    SimInverter,
    SimSunSpecStorage,
    SimVendorPcs,
)


@pytest.fixture
def peers():
    loop = PeerLoop()
    yield loop
    loop.close()


@pytest.fixture
def modbus(peers):
    """Units 1 (SunSpec 103/120/123, 100 kW), 2 (SunSpec 701/702/704, 50 kW), 3 (the
    vendor-map PCS: 100 kW charge, 120 kW discharge, SOC 55 %), 4 (SunSpec storage)."""
    units = [
        SimInverter.build(1, 100_000, 80_000),
        SimInverter.build(2, 50_000, 40_000, der=True),
        SimVendorPcs.build(3, 55.0, 100_000, 120_000),
        SimSunSpecStorage.build(4, 40.0, 60_000, 80_000),
    ]
    peer = ModbusPeer(units)
    peers.run(peer.start())
    yield peer
    for u in peer.units.values():
        u.silent = False
        assert u.violations == [], f"unit {u.unit} was written outside its limits: {u.violations}"
    peers.run(peer.stop())
