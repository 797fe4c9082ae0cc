"""The signal mapping rule (vpp.gridside.signals) and the grid-side file's checks, on plain
values: what each OpenADR signal becomes, windows merged and split, contract types and call
classes, the refusals; the OpenADR 3 intervals read as 2.0b signals; errors that name the
file and the field."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from vpp.errors import UserError
from vpp.gridside.config import load
from vpp.gridside.openadr3 import event_intervals, parse_duration
from vpp.gridside.signals import Interval, MappingContext, SignalError, call_class, dr_fields

T = datetime(2026, 7, 15, 6, 0, tzinfo=UTC)  # 14:00 in Shanghai
Q = timedelta(minutes=15)


def ctx(**kw):
    return MappingContext(import_limit_kw=4000.0, down_flex_kw=lambda a, b: 600.0, **kw)


def iv(k, payload, name="LOAD_DISPATCH", kind="delta", scale="k"):
    return Interval(T + k * Q, Q, name, kind, payload, scale)


def test_deltas_merge_into_windows_and_split_by_ask():
    out = dr_fields("oadr2:E1", [iv(1, -200), iv(0, -200), iv(2, -100), iv(4, -200)], ctx(), T)
    assert [f["event_id"] for f in out] == ["oadr2:E1", "oadr2:E1.2"]
    a, b = out
    assert a["direction"] == "peak_shaving" and a["requested_kw"] == 200
    assert a["windows"] == [
        {"start": "2026-07-15T14:00:00+08:00", "end": "2026-07-15T14:30:00+08:00"},
        {"start": "2026-07-15T15:00:00+08:00", "end": "2026-07-15T15:15:00+08:00"},
    ]
    assert b["requested_kw"] == 100 and len(b["windows"]) == 1
    assert a["contract_type"] == "pre_agreed" and "confirm_deadline" not in a


def test_each_signal_kind():
    up = dr_fields("x", [iv(0, 0.3, scale="M")], ctx(), T)[0]  # +0.3 MW
    assert up["direction"] == "valley_filling" and up["requested_kw"] == pytest.approx(300)
    cap = dr_fields("x", [iv(0, 2500, kind="setpoint")], ctx(), T)[0]
    assert cap["import_cap_kw"] == 2500 and cap["direction"] == "peak_shaving"
    frac = dr_fields("x", [iv(0, 0.5, "LOAD_CONTROL", "x-loadControlCapacity")], ctx(), T)[0]
    assert frac["import_cap_kw"] == pytest.approx(2000)
    lv = dr_fields("x", [iv(0, 2, "SIMPLE", "level", None)], ctx(), T)[0]
    assert lv["requested_kw"] == pytest.approx(400)  # 2/3 of 600 kW down
    fixed = dr_fields("x", [iv(0, 3, "SIMPLE", "level", None)], ctx(level_kw=(0, 1, 2, 99)), T)
    assert fixed[0]["requested_kw"] == 99
    assert dr_fields("x", [iv(0, 0, "SIMPLE", "level", None)], ctx(), T) == []  # level 0
    assert dr_fields("x", [iv(0, -5000, scale="none")], ctx(), T)[0]["requested_kw"] == 5  # W


@pytest.mark.parametrize(
    "bad, says",
    [
        (iv(0, 0.9, "ELECTRICITY_PRICE", "price"), "not a DR call"),
        (iv(0, 7, "SIMPLE", "level", None), "not 0-3"),
        (iv(0, 1.5, "LOAD_CONTROL", "x-loadControlCapacity"), "fraction"),
        (iv(0, float("nan")), "not a number"),
        (iv(0, -1, scale="Q"), "unknown scale"),
    ],
)
def test_what_is_refused(bad, says):
    with pytest.raises(SignalError, match=says):
        dr_fields("x", [bad], ctx(), T)


def test_contracts_and_call_classes():
    c = ctx(programs={"oadr://inv": "invitation"}, confirm_lead_minutes=30)
    f = dr_fields("x", [iv(8, -50)], c, T, program="oadr://inv")[0]
    assert f["contract_type"] == "invitation"
    assert f["confirm_deadline"] == "2026-07-15T15:30:00+08:00"  # 30 min before 16:00
    assert call_class(T, T + timedelta(hours=13)) == "day_ahead"
    assert call_class(T, T + timedelta(hours=2)) == "intraday"
    assert call_class(T, T + timedelta(minutes=20)) == "hour_level"
    assert call_class(T, T + timedelta(minutes=5)) == "minute_level"
    assert dr_fields("a/b c", [iv(0, -1)], ctx(), T)[0]["event_id"] == "a_b_c"


def test_openadr3_intervals():
    ev = {
        "intervalPeriod": {"start": T.isoformat(), "duration": "PT15M"},
        "intervals": [
            {"id": 0, "payloads": [{"type": "IMPORT_CAPACITY_LIMIT", "values": [2.5]}]},
            {"id": 1, "payloads": [{"type": "IMPORT_CAPACITY_LIMIT", "values": [2.0]}]},
        ],
    }
    got = event_intervals(ev, [{"payloadType": "IMPORT_CAPACITY_LIMIT", "units": "MW"}])
    assert [(x.start, x.type, x.scale) for x in got] == [
        (T, "setpoint", "M"),
        (T + Q, "setpoint", "M"),
    ]
    assert parse_duration("PT1H30M") == timedelta(minutes=90)
    assert parse_duration("P1DT0.5S") == timedelta(days=1, seconds=0.5)
    with pytest.raises(SignalError):
        parse_duration("P1M")
    with pytest.raises(SignalError, match="unit"):
        event_intervals(ev, [{"payloadType": "IMPORT_CAPACITY_LIMIT", "units": "KWH"}])


def test_grid_side_file_errors_name_the_field(tmp_path, monkeypatch):
    f = tmp_path / "gs.yaml"
    f.write_text("iec104: {port: 2404, common_adress: 1}\n")
    with pytest.raises(UserError, match=r"gs.yaml: iec104.common_adress: unknown key"):
        load(f)
    f.write_text("openadr2: {vtn_url: http://x, contract_type: maybe}\n")
    with pytest.raises(UserError, match=r"openadr2.contract_type: expected one of"):
        load(f)
    f.write_text("openadr3: {vtn_url: http://x, client_secret_env: NO_SUCH_VAR_42}\n")
    monkeypatch.delenv("NO_SUCH_VAR_42", raising=False)
    with pytest.raises(UserError, match="NO_SUCH_VAR_42 is not set"):
        load(f)
    monkeypatch.setenv("VPP_OADR3_SECRET", "s")
    cfg = load("configs/gridside/example.yaml")
    assert cfg.openadr3.client_secret == "s" and cfg.iec104.port == 2404
