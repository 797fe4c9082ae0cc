"""Meter and asset readings over MQTT (``paho-mqtt``), stored the way the API's telemetry
route stores them: through the runtime's ``ingest_checked`` (the same plausibility checks,
the same table, the same stale-asset bookkeeping), injected as ``ingest``.

Topics: the park meter's (``field_devices.mqtt.park_meter_topic``) and each asset's
(``endpoint.mqtt_topic``), exact names. A message is UTF-8 JSON, one reading or a list of
readings (a gateway's batch)::

    {"ts": "2026-07-15T08:00:00+08:00", "p_kw": 1234.5}
    [{"ts": "2026-07-15T08:00:00+08:00", "p_kw": -20.0, "e_kwh": 410.0}, ...]

``ts``: ISO 8601, with an offset (without one: the park's zone); ``p_kw``: power, load
convention (+ import or consumption, - export or generation); ``e_kwh``: stored energy
(storage only), optional. One of ``p_kw``, ``e_kwh`` is required; other keys, non-finite
numbers and unparseable JSON make the message malformed: counted, logged, never stored.
Readings are handed over in batches (at most every ``flush_s``, or ``batch_max`` at once).
"""

from __future__ import annotations

import json
import logging
import math
import queue
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from vpp.park.model import MqttBroker

log = logging.getLogger(__name__)
KEYS = {"ts", "p_kw", "e_kwh"}


class MalformedReadingError(ValueError):
    """A message that is not a reading (why, for the log)."""


def parse_payload(payload: bytes, asset: str, zone: ZoneInfo) -> list[dict[str, Any]]:
    """The readings of one message as rows ``{asset, ts, p_kw, e_kwh}``.

    Raises
    ------
    MalformedReadingError
        Not JSON, not an object or a list of objects, unknown keys, a missing or bad
        ``ts``, non-finite or non-numeric values, neither ``p_kw`` nor ``e_kwh``.
    """
    try:
        doc = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MalformedReadingError(f"not UTF-8 JSON ({exc.__class__.__name__})") from None
    items = doc if isinstance(doc, list) else [doc]
    rows = []
    for i, x in enumerate(items):
        where = f"[{i}]" if isinstance(doc, list) else ""
        if not isinstance(x, dict):
            raise MalformedReadingError(
                f"{where or 'message'}: expected an object {{ts, p_kw, e_kwh}}"
            )
        bad = sorted(set(x) - KEYS)
        if bad:
            raise MalformedReadingError(f"{where}{bad[0]}: unknown key; expected {sorted(KEYS)}")
        ts = _ts(x.get("ts"), zone, where)
        vals = {k: _num(x.get(k), f"{where}{k}") for k in ("p_kw", "e_kwh")}
        if vals["p_kw"] is None and vals["e_kwh"] is None:
            raise MalformedReadingError(f"{where or 'message'}: p_kw or e_kwh is required")
        rows.append({"asset": asset, "ts": ts, **vals})
    return rows


def _ts(v: Any, zone: ZoneInfo, where: str) -> datetime:
    if not isinstance(v, str):
        raise MalformedReadingError(f"{where}ts: required, an ISO 8601 time")
    try:
        t = datetime.fromisoformat(v.replace("Z", "+00:00"))
    except ValueError:
        raise MalformedReadingError(f"{where}ts: not an ISO 8601 time: {v!r}") from None
    return t if t.tzinfo else t.replace(tzinfo=zone)


def _num(v: Any, where: str) -> float | None:
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise MalformedReadingError(f"{where}: must be a finite number, got {v!r}")
    return float(v)


Ingest = Callable[[list[dict[str, Any]], str], Any]


class MqttTelemetry:
    """Subscribed to the configured topics, hands readings to ``ingest(rows, "mqtt")``.

    Parameters
    ----------
    cfg : MqttBroker
        Broker address, client id, QoS.
    topics : dict
        Topic -> asset name (``park`` for the park meter).
    zone : str
        The park's zone, for times without an offset.
    ingest : callable, optional
        ``ingest(rows, source)`` (the runtime's ``ingest_checked``); set later with
        :meth:`bind`. Readings received before are kept (up to ``backlog_max``).
    """

    def __init__(
        self,
        cfg: MqttBroker,
        topics: dict[str, str],
        zone: str,
        ingest: Ingest | None = None,
        flush_s: float = 0.2,
        batch_max: int = 2000,
        backlog_max: int = 200_000,
    ):
        self.cfg, self.topics, self.zone = cfg, dict(topics), ZoneInfo(zone)
        self._ingest = ingest
        self.flush_s, self.batch_max, self.backlog_max = flush_s, batch_max, backlog_max
        self._q: queue.SimpleQueue = queue.SimpleQueue()
        self._stop = threading.Event()
        self._client = None
        self._flusher: threading.Thread | None = None
        self.connected = threading.Event()
        self.stats = {"messages": 0, "readings": 0, "malformed": 0, "stored": 0, "refused": 0}
        self.last_malformed = ""
        self.last_error = ""
        self.last_message_at: dict[str, float] = {}  # asset -> monotonic time
        self._backlog: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self.batches = threading.Condition()  # notified after each hand-over

    def bind(self, ingest: Ingest) -> None:
        self._ingest = ingest

    def start(self) -> None:
        import paho.mqtt.client as mqtt

        c = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=self.cfg.client_id, protocol=mqtt.MQTTv311
        )
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_message = self._on_message
        c.reconnect_delay_set(min_delay=1, max_delay=30)
        self._client = c
        c.connect_async(self.cfg.host, self.cfg.port, keepalive=30)
        c.loop_start()
        self._flusher = threading.Thread(target=self._flush_loop, name="mqtt-ingest", daemon=True)
        self._flusher.start()

    def _on_connect(self, client, userdata, flags, reason_code, properties=None) -> None:
        if reason_code.is_failure:
            self.last_error = f"broker refused: {reason_code}"
            log.warning("MQTT: %s", self.last_error)
            return
        client.subscribe([(t, self.cfg.qos) for t in self.topics])
        self.connected.set()
        log.info(
            "MQTT: connected to %s:%d, %d topics", self.cfg.host, self.cfg.port, len(self.topics)
        )

    def _on_disconnect(self, client, userdata, flags, reason_code, properties=None) -> None:
        self.connected.clear()
        if not self._stop.is_set():
            self.last_error = f"disconnected: {reason_code}"
            log.warning("MQTT: %s (reconnecting)", self.last_error)

    def _on_message(self, client, userdata, msg) -> None:
        self._q.put((msg.topic, msg.payload))

    def _flush_loop(self) -> None:
        while not self._stop.is_set():
            try:
                first = self._q.get(timeout=self.flush_s)
            except queue.Empty:
                if self._backlog:
                    self._hand_over([])
                continue
            batch = [first]
            deadline = time.monotonic() + self.flush_s / 4
            while len(batch) < self.batch_max:
                try:
                    batch.append(self._q.get(timeout=max(deadline - time.monotonic(), 0)))
                except queue.Empty:
                    break
            self._hand_over(self._parse(batch))

    def _parse(self, batch: list[tuple[str, bytes]]) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        now = time.monotonic()
        for topic, payload in batch:
            self.stats["messages"] += 1
            asset = self.topics.get(topic)
            if asset is None:
                continue
            try:
                got = parse_payload(payload, asset, self.zone)
            except MalformedReadingError as exc:
                self.stats["malformed"] += 1
                self.last_malformed = f"{topic}: {exc}"
                log.warning("MQTT: malformed reading on %s: %s (not stored)", topic, exc)
                continue
            self.last_message_at[asset] = now
            rows += got
        self.stats["readings"] += len(rows)
        return rows

    def _hand_over(self, rows: list[dict[str, Any]]) -> None:
        rows = self._backlog + rows
        self._backlog = []
        if not rows:
            return
        if self._ingest is None:
            self._backlog = rows[-self.backlog_max :]
            return
        try:
            report = self._ingest(rows, "mqtt")
        except Exception as exc:  # the store is down: keep them and try again
            self.last_error = f"ingest failed: {type(exc).__name__}: {exc}"
            log.warning("MQTT: %s; %d readings kept for the next try", self.last_error, len(rows))
            self._backlog = rows[-self.backlog_max :]
            time.sleep(min(self.flush_s * 5, 1.0))
            return
        stored = getattr(report, "stored", report if isinstance(report, int) else 0)
        refused = len(getattr(report, "refused", ()) or ())
        with self.batches:
            self.stats["stored"] += int(stored)
            self.stats["refused"] += refused
            self.batches.notify_all()

    def wait_stored(self, n: int, timeout_s: float) -> bool:
        """Wait until ``n`` readings were handed over and stored or refused (tests, bench)."""
        end = time.monotonic() + timeout_s
        with self.batches:
            while self.stats["stored"] + self.stats["refused"] < n:
                left = end - time.monotonic()
                if left <= 0:
                    return False
                self.batches.wait(left)
        return True

    def health(self) -> dict[str, Any]:
        return {
            "broker": f"{self.cfg.host}:{self.cfg.port}",
            "connected": self.connected.is_set(),
            "topics": len(self.topics),
            **self.stats,
            "last_malformed": self.last_malformed,
            "last_error": self.last_error,
        }

    def close(self) -> None:
        self._stop.set()
        if self._client is not None:
            self._client.disconnect()
            self._client.loop_stop()
        if self._flusher is not None:
            self._flusher.join(2)
        if self._backlog and self._ingest is not None:
            self._hand_over([])
