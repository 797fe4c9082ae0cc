"""DR events from files go through the park file's checks (vpp.park.dr_checks): a ``--dr``
scenario file's bad window, negative kW, misspelt key or duplicate id is an error naming the
file and field before anything runs, and ``vpp dispatch`` plans with the park file's events
and a ``--dr`` file's, saying which events shaped the plan."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from vpp.cli import main
from vpp.commands.simulate import load_dr_events
from vpp.errors import UserError
from vpp.park.config import ConfigError, load_site

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "configs" / "parks" / "demo.yaml"
SCENARIO = ROOT / "configs" / "scenarios" / "demo_dr_july.yaml"
TZ = "Asia/Shanghai"


def _event(event_id: str, start: str, end: str, **kw) -> dict:
    return {
        "event_id": event_id,
        "direction": "peak_shaving",
        "windows": [{"start": f"2026-07-15T{start}:00", "end": f"2026-07-15T{end}:00"}],
        "requested_kw": 800,
        "announce_time": "2026-07-14T17:00:00",
        **kw,
    }


def _scenario(tmp_path: Path, events: list[dict]) -> Path:
    path = tmp_path / "scenarios" / "bad_dr.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(yaml.safe_dump({"dr_events": events}))
    return path


def _park(tmp_path: Path, mutate) -> Path:
    doc = yaml.safe_load(DEMO.read_text())
    mutate(doc)
    park = tmp_path / "parks" / "park.yaml"
    park.parent.mkdir(parents=True)
    for d in ("tariffs", "carbon", "profiles", "calendars"):
        if (ROOT / "configs" / d).exists():
            (tmp_path / d).symlink_to(ROOT / "configs" / d)
    park.write_text(yaml.safe_dump(doc))
    return park


def _dr_error(path: Path, site=None) -> str:
    with pytest.raises(UserError) as exc:
        load_dr_events(path, TZ, site)
    return str(exc.value)


def test_the_demo_scenario_passes_against_the_demo_park():
    site = load_site(DEMO)
    (e,) = load_dr_events(SCENARIO, TZ, site)
    assert e.event_id == "ZJ-DR-20260715-01" and e.windows[0].start.utcoffset().seconds == 8 * 3600


def test_a_window_ending_before_its_start_is_an_error_not_a_traceback(tmp_path):
    msg = _dr_error(_scenario(tmp_path, [_event("A", "16:00", "14:00")]))
    assert (
        "scenarios/bad_dr.yaml: dr_events[0].windows[0].end: must be after start "
        "(2026-07-15T16:00:00+08:00), got 2026-07-15T14:00:00+08:00"
    ) in msg


def test_negative_kw_and_kw_beyond_the_connection(tmp_path):
    events = [_event("A", "14:00", "16:00", requested_kw=-5), _event("B", "14:00", "16:00")]
    events[1]["requested_kw"] = 999_999
    msg = _dr_error(_scenario(tmp_path, events), load_site(DEMO))
    assert "dr_events[0].requested_kw: must be in [0, 12000] kW" in msg and "got -5" in msg
    assert "dr_events[1].requested_kw: must be in [0, 12000] kW" in msg and "got 999999" in msg
    # without a park the sign is still checked
    assert "dr_events[0].requested_kw: must be in >= 0, got -5" in _dr_error(
        _scenario(tmp_path, events[:1])
    )


def test_a_misspelt_key_is_an_error_not_dropped(tmp_path):
    msg = _dr_error(_scenario(tmp_path, [_event("A", "14:00", "16:00", import_cap=900)]))
    assert "scenarios/bad_dr.yaml: dr_events[0].import_cap: unknown key; expected one of" in msg
    assert "'import_cap_kw'" in msg


def test_duplicate_event_ids_in_the_file_and_against_the_park_file(tmp_path):
    same = [_event("A", "14:00", "15:00"), _event("A", "15:00", "16:00")]
    msg = _dr_error(_scenario(tmp_path, same))
    assert "dr_events[1].event_id: is already used by dr_events[0], got 'A'" in msg
    park = _park(tmp_path, lambda d: d.update(dr_events=[_event("A", "10:00", "11:00")]))
    msg = _dr_error(_scenario(tmp_path, same[:1]), load_site(park))
    assert "dr_events[0].event_id: is already used by park.yaml dr_events[0], got 'A'" in msg


def test_the_park_file_runs_the_same_checks(tmp_path):
    def bad(doc):
        doc["dr_events"] = [
            _event("A", "14:00", "14:05", baseline_method="<script>"),
            _event("B", "13:00", "15:00", issuer="a\x00b"),
        ]
        doc["dr_events"][1]["windows"].append(
            {"start": "2026-07-15T14:00:00", "end": "2026-07-15T16:00:00"}
        )

    with pytest.raises(ConfigError) as exc:
        load_site(_park(tmp_path, bad))
    msg = str(exc.value)
    assert "parks/park.yaml: dr_events[0].windows[0].end: the window must last at least " in msg
    assert "parks/park.yaml: dr_events[0].baseline_method: must be one of" in msg
    assert "parks/park.yaml: dr_events[1].issuer: must be printable text" in msg
    assert "parks/park.yaml: dr_events[1].windows[1].start: overlaps windows[0]" in msg


def test_simulate_stops_before_running_with_every_problem(tmp_path, capsys):
    bad = _scenario(tmp_path, [_event("A", "16:00", "14:00", requested_kw=-1)])
    args = ["simulate", "--config", str(DEMO), "--start", "2026-07-15", "--days", "2"]
    rc = main([*args, "--out", str(tmp_path / "out"), "--dr", str(bad), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and "windows[0].end: must be after start" in err and "requested_kw" in err
    assert not (tmp_path / "out").exists()


def _dispatch(park: Path, tmp_path: Path, name: str, *extra: str) -> tuple[dict, str]:
    out = tmp_path / f"{name}.json"
    args = ["dispatch", "--config", str(park), "--at", "2026-07-15T08:00", "--json", str(out)]
    rc = main([*args, *extra])
    assert rc == 0
    return json.loads(out.read_text()), name


def test_dispatch_plans_with_the_park_files_events_and_a_dr_file(tmp_path, capsys):
    events = [
        # A confirmed cap is followed when not following costs more: its penalty says so.
        _event(
            "P-CAP", "09:00", "10:00", import_cap_kw=5000, requested_kw=0, status="confirmed",
            nonperformance_cny_per_kwh=50.0,
        ),
        _event("P-SHAVE", "10:00", "11:00", requested_kw=600),
        _event("P-DECLINED", "09:00", "10:00", status="declined"),
        _event("P-LATER", "10:00", "11:00", announce_time="2026-07-15T09:00:00"),
        {**_event("P-TOMORROW", "14:00", "15:00"), "windows": [
            {"start": "2026-07-17T14:00:00", "end": "2026-07-17T15:00:00"}
        ]},
    ]  # fmt: skip

    def short(doc, with_events=True):
        doc["dispatch"] = {**(doc.get("dispatch") or {}), "horizon_steps": 16}
        if with_events:
            doc["dr_events"] = events

    plain_park = _park(tmp_path / "a", lambda d: short(d, False))
    dr_park = _park(tmp_path / "b", short)
    plain, _ = _dispatch(plain_park, tmp_path, "plain")
    capsys.readouterr()
    with_dr, _ = _dispatch(dr_park, tmp_path, "dr")
    text = capsys.readouterr().out
    net_plain, net_dr = plain["p_net_kw"], with_dr["p_net_kw"]
    assert max(net_dr[4:8]) <= 5000 + 1e-3 < max(net_plain[4:8])  # 09:00-10:00 under the cap
    assert with_dr["dr_decisions"]["P-CAP"]["effective"] is True
    assert any(m.startswith("DR P-CAP: following costs") for m in with_dr["messages"])
    assert net_dr != net_plain
    assert "DR events: 2 of 5 shape this plan" in text
    lines = {ln.split()[0]: ln for ln in text.splitlines() if ln.startswith("  P-")}
    assert lines["P-CAP"].endswith("shapes the plan")
    assert lines["P-SHAVE"].endswith("shapes the plan")
    assert lines["P-DECLINED"].endswith("declined")
    assert lines["P-LATER"].endswith("announced after --at")
    assert "no window in the horizon" in lines["P-TOMORROW"]
    assert {d["event_id"]: d["shapes_plan"] for d in with_dr["dr_events"]}["P-CAP"] is True
    # a --dr file adds to the park file's events, checked alike
    extra = _scenario(tmp_path, [_event("F-1", "11:00", "12:00", requested_kw=500)])
    _dispatch(dr_park, tmp_path, "dr_file", "--dr", str(extra))
    assert "DR events: 3 of 6 shape this plan" in capsys.readouterr().out
    clash = _scenario(tmp_path, [_event("P-CAP", "11:00", "12:00")])
    args = ["dispatch", "--config", str(dr_park), "--at", "2026-07-15T08:00"]
    assert main([*args, "--dr", str(clash)]) == 2
    assert "is already used by park.yaml dr_events[0]" in capsys.readouterr().err
