"""Endpoints in the park file and register maps under configs/registers are validated like
the park file: every problem names the file and the field path and what was expected."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.integration.field.peers import LOOPBACK, ROOT, loopback_park
from vpp.drivers import register_maps
from vpp.drivers.ocpp_auth import hash_key, load_keys, verify
from vpp.park.config import ConfigError, load_site


def _problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as exc:
        load_site(path)
    return exc.value.problems


def test_shipped_register_maps_and_the_loopback_park_load():
    for f in sorted((ROOT / "configs" / "registers").glob("*.yaml")):
        m = register_maps.load(f)
        assert m.kind in ("sunspec", "vendor")
    site = load_site(LOOPBACK)
    assert len([c for c in site.assets.ev_chargers if c.endpoint.ocpp]) == 20
    assert site.field_devices.mqtt.park_meter_topic == "park-vpp/loopback/meter/park"
    keys = load_keys(LOOPBACK.parent / "field_loopback/ocpp_keys.yaml")
    assert verify("loopback-demo-key-07-not-secret", keys["CP-07"])
    assert not verify("loopback-demo-key-07-not-secret", keys["CP-08"])


def test_a_bad_register_map_names_the_file_and_every_field(tmp_path):
    bad = tmp_path / "registers" / "pcs.yaml"
    bad.parent.mkdir()
    bad.write_text(
        yaml.safe_dump(
            {
                "kind": "vendor",
                "role": "storage",
                "colour": "red",
                "points": {
                    "soc": {"address": 100, "type": "uint16", "unit": "percent"},
                    "p": {"address": 101, "type": "float64", "scale": 1, "unit": "W"},
                    "p_set": {"address": 100, "type": "int32", "scale": -1, "unit": "W"},
                    "q": {"address": 300, "type": "int16"},
                },
            }
        )
    )
    with pytest.raises(ConfigError) as exc:
        register_maps.load(bad)
    got = exc.value.problems
    assert all(p.startswith("registers/pcs.yaml: ") for p in got), got
    text = "\n".join(got)
    for fragment in (
        "colour: unknown key",
        "points.soc.unit: must be one of ['pct', 'frac'], got 'percent'",
        "points.p.type: must be one of",
        "points.p_set.scale: must be a number > 0, got -1",
        "points.q: unknown point",
    ):
        assert fragment in text, (fragment, got)
    bad.write_text(yaml.safe_dump({"kind": "sunspec", "role": "meter", "base_address": -1}))
    with pytest.raises(ConfigError) as exc:
        register_maps.load(bad)
    assert any("role: must be 'inverter' or 'storage'" in p for p in exc.value.problems)
    assert any("base_address: must be a register address" in p for p in exc.value.problems)


def test_endpoint_problems_name_the_field_path(tmp_path):
    path, _, _ = loopback_park(tmp_path, 1502, chargers=3)
    doc = yaml.safe_load(path.read_text())
    a = doc["assets"]
    a["ev_chargers"][1]["endpoint"]["ocpp"] = {"station": "CP-01", "connector": 1}  # taken
    a["ev_chargers"][2]["endpoint"]["ocpp"] = {"station": "CP 3", "connector": 0, "phases": 2}
    a["batteries"][0]["endpoint"]["ocpp"] = {"station": "CP-09"}
    a["pv_arrays"][0]["endpoint"]["modbus"]["register_map"] = "nowhere.yaml"
    a["pv_arrays"][1]["endpoint"]["modbus"]["unit_id"] = 300
    a["pv_arrays"][1]["endpoint"]["modbus"]["baud"] = 9600
    a["base_loads"][0]["endpoint"] = {"mqtt_topic": "meters/#"}
    doc["field_devices"]["ocpp"].update(auth="none", host="0.0.0.0")
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    got = "\n".join(_problems(path))
    for fragment in (
        "assets.ev_chargers[1].endpoint.ocpp: station 'CP-01' connector 1 is already used by "
        "assets.ev_chargers[0].endpoint.ocpp",
        "assets.ev_chargers[2].endpoint.ocpp.station: must be a charge point id",
        "assets.ev_chargers[2].endpoint.ocpp.connector: must be >= 1",
        "assets.ev_chargers[2].endpoint.ocpp.phases: must be 1 or 3, got 2",
        "assets.batteries[0].endpoint.ocpp: only an EV charger is reached over OCPP (pcs-1)",
        "assets.pv_arrays[0].endpoint.modbus.register_map: no such file 'nowhere.yaml'",
        "assets.pv_arrays[1].endpoint.modbus.unit_id: must be in [0, 247], got 300",
        "assets.pv_arrays[1].endpoint.modbus.baud: unknown key",
        "assets.base_loads[0].endpoint.mqtt_topic: must be an exact topic",
        "field_devices.ocpp.auth: 'none' is allowed on a loopback host only",
    ):
        assert fragment in got, (fragment, got)
    assert got.startswith("field_park.yaml") or "field_park.yaml: " in got
    del doc["field_devices"]["ocpp"]
    doc["assets"] = {"ev_chargers": a["ev_chargers"][:1], "base_loads": a["base_loads"]}
    doc["assets"]["base_loads"][0]["endpoint"] = {"mqtt_topic": "meters/plant"}
    del doc["field_devices"]["mqtt"]
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    got = "\n".join(_problems(path))
    assert "field_devices.ocpp: required: chargers name OCPP endpoints" in got
    assert "field_devices.mqtt: required: assets name MQTT topics" in got


def test_keys_file_entries_are_hashes(tmp_path):
    f = tmp_path / "keys.yaml"
    f.write_text(yaml.safe_dump({"stations": {"CP-01": hash_key("k"), "CP-02": "plain-key"}}))
    with pytest.raises(ConfigError, match=r"stations\.CP-02: expected 'sha256\$SALT\$DIGEST'"):
        load_keys(f)
