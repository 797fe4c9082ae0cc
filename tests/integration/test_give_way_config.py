"""Who gives way, from the park file: the YAML priority (``give_way``) of a fleet, a charger,
a shiftable and a curtailable load reaches the model, the generated sessions and the
session inputs of the dispatch with its weight; a bad value is an error naming the field.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml

from vpp.park.config import ConfigError, load_site
from vpp.park.model import GiveWay, Horizon
from vpp.park.sessions import sessions_for_day
from vpp.plan.prepare import _ev_inputs

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "configs" / "parks" / "demo.yaml"
TZ = ZoneInfo("Asia/Shanghai")


def _write(tmp_path: Path, mutate) -> Path:
    doc = yaml.safe_load(DEMO.read_text(encoding="utf-8"))
    mutate(doc)
    park = tmp_path / "parks" / "park.yaml"
    park.parent.mkdir(exist_ok=True)
    for data in ("tariffs", "carbon"):
        if not (tmp_path / data).exists():
            (tmp_path / data).symlink_to(ROOT / "configs" / data)
    park.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return park


def _priorities(doc) -> None:
    """Logistics vans that must leave full, staff cars that may give way."""
    vans, staff = doc["assets"]["ev_charger_groups"][1], doc["assets"]["ev_charger_groups"][0]
    vans["fleet"]["give_way"] = "last"
    staff["give_way"] = "first"  # the chargers of the staff car park
    doc["assets"]["shiftable_loads"][0]["give_way"] = "first"
    doc["assets"]["curtailable_loads"][0]["give_way"] = "last"
    doc["penalties"] = {"give_way_first_factor": 0.25}


def test_yaml_priority_reaches_the_session_inputs_with_its_weight(tmp_path):
    site = load_site(_write(tmp_path, _priorities))
    a = site.assets
    assert a.shiftable_loads[0].give_way is GiveWay.FIRST
    assert a.curtailable_loads[0].give_way is GiveWay.LAST
    assert a.curtailable_loads[1].give_way is GiveWay.FIRST  # the default
    fleets = {f.name: f for f in site.ev_fleets}
    assert fleets["B05-DC"].give_way is GiveWay.LAST and fleets["B01-EV"].give_way is None
    chargers = {c.name: c for c in a.ev_chargers}
    assert chargers["B01-EV-01"].give_way is GiveWay.FIRST
    assert chargers["B05-DC-01"].give_way is GiveWay.NORMAL
    day = date(2026, 7, 15)  # a Wednesday
    sessions = []
    for fleet in site.ev_fleets:
        sessions += sessions_for_day(fleet, chargers, day, site.location.tz, seed=1)
    vans = [s for s in sessions if s.charger.startswith("B05-DC")]
    staff = [s for s in sessions if s.charger.startswith("B01-EV")]
    assert vans and staff
    assert {s.give_way for s in vans} == {GiveWay.LAST}  # the fleet's
    assert {s.give_way for s in staff} == {None}  # left to the charger
    horizon = Horizon(datetime(2026, 7, 15, tzinfo=TZ), timedelta(minutes=15), 192)
    inputs = {
        s.session_id: s
        for ch in _ev_inputs(a.ev_chargers, tuple(sessions), horizon)
        for s in ch.sessions
    }
    pen = site.penalties
    for s in vans:
        got = inputs[s.session_id]
        assert got.give_way is GiveWay.LAST
        assert pen.give_way_cny_per_kwh("ev_energy", got.give_way) == 4000.0
    for s in staff:
        got = inputs[s.session_id]
        assert got.give_way is GiveWay.FIRST  # the charger's
        assert pen.give_way_cny_per_kwh("ev_energy", got.give_way) == 500.0  # 0.25 x 2,000


def test_a_booked_session_keeps_its_own_priority(tmp_path):
    def booked(doc):
        doc["ev_sessions"] = [
            {
                "session_id": "van-7",
                "charger": "B01-EV-01",
                "arrival": "2026-07-15T08:00:00",
                "departure": "2026-07-15T17:00:00",
                "e_needed_kwh": 20,
                "give_way": "last",
            }
        ]
        doc["assets"]["ev_charger_groups"][0]["give_way"] = "first"

    site = load_site(_write(tmp_path, booked))
    horizon = Horizon(datetime(2026, 7, 15, tzinfo=TZ), timedelta(minutes=15), 96)
    (ch,) = [
        c for c in _ev_inputs(site.assets.ev_chargers, site.ev_sessions, horizon) if c.sessions
    ]
    assert ch.sessions[0].give_way is GiveWay.LAST


@pytest.mark.parametrize(
    "mutate, expected",
    [
        (
            lambda d: d["assets"]["shiftable_loads"][0].update(give_way="soonest"),
            "parks/park.yaml: assets.shiftable_loads[0].give_way: input should be 'first', "
            "'normal' or 'last', got 'soonest'",
        ),
        (
            lambda d: d["assets"]["curtailable_loads"][1].update(give_way=3),
            "parks/park.yaml: assets.curtailable_loads[1].give_way: input should be 'first', "
            "'normal' or 'last', got 3",
        ),
        (
            lambda d: d.update(
                ev_fleets=[{"name": "extra", "chargers": ["B01-EV-01"], "give_way": "never"}]
            ),
            "parks/park.yaml: ev_fleets[0].give_way: input should be 'first', 'normal' or "
            "'last', got 'never'",
        ),
        (
            lambda d: d.update(penalties={"give_way_last_factor": 0.5}),
            "parks/park.yaml: penalties.give_way_last_factor: must be >= 1, got 0.5",
        ),
        (
            lambda d: d.update(penalties={"give_way_first_factor": 1.5}),
            "parks/park.yaml: penalties.give_way_first_factor: must be in (0, 1], got 1.5",
        ),
    ],
    ids=["shiftable", "curtailable", "fleet", "last-factor", "first-factor"],
)
def test_a_bad_priority_names_the_field(tmp_path, mutate, expected):
    with pytest.raises(ConfigError) as exc:
        load_site(_write(tmp_path, mutate))
    assert expected in exc.value.problems, exc.value.problems
