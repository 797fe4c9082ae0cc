"""MQTT telemetry through the real Mosquitto broker into the runtime's own telemetry path
(``Runtime.ingest_checked``, what ``POST /api/v1/telemetry`` calls): the same checks, the
same table; malformed messages are counted and never stored. Topics are the test's own."""

from __future__ import annotations

import json
import re
import uuid
from datetime import datetime, timedelta

import paho.mqtt.client as mqtt
import pytest
from sqlalchemy import select

from tests.integration.field.peers import loopback_park
from tests.service_kit import T0, make_runtime
from vpp.drivers.mqtt_telemetry import MalformedReadingError, MqttTelemetry, parse_payload
from vpp.park.config import load_site
from vpp.park.model import MqttBroker
from vpp.store import tables


def _publisher(host, port):
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:8]}")
    c.connect(host, port)
    c.loop_start()
    return c


def _stored(rt, source):
    with rt.engine.connect() as conn:
        rows = conn.execute(
            select(tables.telemetry).where(tables.telemetry.c.source == source)
        ).all()
    return sorted((r.asset, r.ts, r.p_kw, r.e_kwh) for r in rows)


def test_parse_payload_refuses_what_is_not_a_reading():
    from zoneinfo import ZoneInfo

    z = ZoneInfo("Asia/Shanghai")
    rows = parse_payload(b'{"ts": "2026-07-15T08:00:00", "p_kw": 5}', "park", z)
    assert rows[0]["ts"].utcoffset() == timedelta(hours=8) and rows[0]["e_kwh"] is None
    for bad, why in (
        (b"not json", "JSON"),
        (b'{"ts": "2026-07-15T08:00:00+08:00", "p_kw": 1, "kw": 2}', "unknown key"),
        (b'{"ts": "yesterday", "p_kw": 1}', "ISO 8601"),
        (b'{"ts": "2026-07-15T08:00:00+08:00"}', "required"),
        (b'{"ts": "2026-07-15T08:00:00+08:00", "p_kw": "5"}', "finite number"),
        (b'[{"ts": "2026-07-15T08:00:00+08:00", "p_kw": 1}, 7]', "[1]"),
    ):
        with pytest.raises(MalformedReadingError, match=re.escape(why)):
            parse_payload(bad, "park", z)


def test_mqtt_readings_are_stored_exactly_as_the_api_stores_them(mqtt_broker, tmp_path):
    host, port = mqtt_broker
    tag = uuid.uuid4().hex[:10]
    path, meter_topic, _ = loopback_park(tmp_path, 1502, chargers=0, tag=tag)
    site = load_site(path)
    via_mqtt = make_runtime(f"sqlite:///{tmp_path / 'm.sqlite3'}", site=site)
    via_api = make_runtime(f"sqlite:///{tmp_path / 'a.sqlite3'}", site=site)
    pcs_topic = f"park-vpp/test/{tag}/pcs-1"
    cfg = MqttBroker(host=host, port=port, client_id=f"vpp-{tag}", qos=1)
    sub = MqttTelemetry(cfg, {meter_topic: "park", pcs_topic: "pcs-1"}, site.location.tz)
    sub.bind(via_mqtt.ingest_checked)
    sub.start()
    assert sub.connected.wait(10)
    readings = [
        (meter_topic, {"ts": (T0 - timedelta(minutes=2)).isoformat(), "p_kw": 812.5}),
        (meter_topic, {"ts": (T0 - timedelta(minutes=1)).isoformat(), "p_kw": -40.0}),
        (meter_topic, {"ts": T0.isoformat(), "p_kw": 1e6}),  # beyond the transformer: refused
        (meter_topic, {"ts": (T0 + timedelta(hours=2)).isoformat(), "p_kw": 10.0}),  # future
        (
            pcs_topic,
            [
                {"ts": T0.isoformat(), "p_kw": -50.0, "e_kwh": 210.0},
                {"ts": T0.isoformat(), "p_kw": 10.0, "e_kwh": 9_999.0},  # above the capacity
            ],
        ),
    ]
    pub = _publisher(host, port)
    # subscribed before publishing: QoS 1 delivers each once at least, in order per topic
    assert sub.connected.is_set()
    infos = [pub.publish(t, json.dumps(body), qos=1) for t, body in readings]
    infos.append(pub.publish(meter_topic, b"{not json", qos=1))
    for i in infos:
        i.wait_for_publish(5)
    assert sub.wait_stored(6, 10), sub.stats
    pub.loop_stop()
    pub.disconnect()
    sub.close()
    assert sub.stats["malformed"] == 1 and sub.stats["refused"] == 3 and sub.stats["stored"] == 3
    # the same readings through the API's path give the same rows and the same refusals
    api_rows = [
        {
            "asset": "park" if topic == meter_topic else "pcs-1",
            "ts": datetime.fromisoformat(x["ts"]),
            "p_kw": x.get("p_kw"),
            "e_kwh": x.get("e_kwh"),
        }
        for topic, body in readings
        for x in (body if isinstance(body, list) else [body])
    ]
    report = via_api.ingest_checked(api_rows, source="mqtt")
    assert report.stored == 3 and len(report.refused) == 3
    assert _stored(via_mqtt, "mqtt") == _stored(via_api, "mqtt")
    assert [(a, p, e) for a, _, p, e in _stored(via_mqtt, "mqtt")] == [
        ("park", 812.5, None),  # in time order
        ("park", -40.0, None),
        ("pcs-1", -50.0, 210.0),
    ]
    assert via_mqtt.readings()["park"].p_kw == -40.0  # the stale-asset bookkeeping saw it
    metrics = via_mqtt.metrics.render().decode()
    assert 'vpp_telemetry_readings_total{source="mqtt"} 3.0' in metrics
    assert 'vpp_telemetry_refused_total{field="p_kw",source="mqtt"} 1.0' in metrics
