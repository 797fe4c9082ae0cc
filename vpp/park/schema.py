"""The JSON Schema (draft 2020-12) of the park file and of the tariff file, as the YAML is
written, with every field's unit, default and bounds.

The schema starts from pydantic's schema of the model's dataclasses
(``TypeAdapter(Site).json_schema()``) and is reshaped to the YAML that
:mod:`vpp.park.config` reads, which differs from the model:

- ``site: {name, location, value_added_10k_cny_per_year}`` holds what ``Site`` has at its top;
- ``tariff:`` is a tariff file (path relative to the park file) or an inline tariff;
- ``carbon:`` is ``{factors: FILE, region, year, ...}`` (one entry of a factor catalogue) or an
  inline carbon block;
- ``assets.ev_charger_groups`` expands into identical chargers and the fleet that uses them;
- datetimes without an offset are in the site's zone; times are ``HH:MM``;
- unknown keys are errors (``additionalProperties: false`` on every object).

The bounds that :mod:`vpp.park.config` enforces by hand are written down once, in
:data:`BOUNDS`; ``tests/integration/test_config_schema.py`` checks that the validator refuses
every value just outside them, so the two cannot drift. Checks that relate two fields or two
assets (``soc_min_frac <= soc_max_frac``, known buses) cannot be a JSON Schema bound: they are
listed, as text, in :data:`CROSS_CHECKS`.

Nothing here reads or writes files except :mod:`inspect` reading the model's source for its
field comments; ``vpp config schema`` and ``vpp config reference`` write the results.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import inspect
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pydantic import TypeAdapter

from vpp.park import dr_checks
from vpp.park import model as m

DIALECT = "https://json-schema.org/draft/2020-12/schema"


# --------------------------------------------------------------------------------------------
# Bounds: what vpp.park.config checks, written once
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Bound:
    """The admissible values of one field.

    Parameters
    ----------
    minimum, exclusive_minimum, maximum : float, optional
        Numeric bounds, in the field's unit (``exclusive_minimum=0`` is "> 0").
    divisor_of : int, optional
        The value must divide this number (``step_minutes`` divides 1440, a day).
    min_items, max_items : int, optional
        Length of a list.
    min_length, max_length : int, optional
        Length of a string.
    pattern : str, optional
        A regular expression a string must match.
    one_of : tuple of str, optional
        The values a string may take.
    each : bool
        The numeric bounds apply to every item of a list or every value of a mapping.
    """

    minimum: float | None = None
    exclusive_minimum: float | None = None
    maximum: float | None = None
    divisor_of: int | None = None
    min_items: int | None = None
    max_items: int | None = None
    min_length: int | None = None
    max_length: int | None = None
    pattern: str | None = None
    one_of: tuple[str, ...] | None = None
    each: bool = False

    def keywords(self, kind: str) -> dict[str, Any]:
        """JSON Schema keywords for the part of the field of JSON type ``kind``."""
        out: dict[str, Any] = {}
        if kind == "string":
            for key, value in (
                ("minLength", self.min_length),
                ("maxLength", self.max_length),
                ("pattern", self.pattern),
                ("enum", list(self.one_of) if self.one_of else None),
            ):
                if value is not None:
                    out[key] = value
            return out
        if kind not in ("number", "integer"):
            return out
        if self.minimum is not None:
            out["minimum"] = self.minimum
        if self.exclusive_minimum is not None:
            out["exclusiveMinimum"] = self.exclusive_minimum
        if self.maximum is not None:
            out["maximum"] = self.maximum
        if self.divisor_of is not None:
            out["enum"] = [d for d in range(1, self.divisor_of + 1) if self.divisor_of % d == 0]
        return out

    def text(self) -> str:
        """The bound as a reader writes it: ``> 0``, ``[0, 1]``, ``(0, 1]``, ``24 values``."""
        parts: list[str] = []
        lo = self.minimum if self.minimum is not None else self.exclusive_minimum
        if lo is not None and self.maximum is not None:
            left = "[" if self.minimum is not None else "("
            parts.append(f"{left}{_g(lo)}, {_g(self.maximum)}]")
        elif lo is not None:
            parts.append(f"{'>=' if self.minimum is not None else '>'} {_g(lo)}")
        elif self.maximum is not None:
            parts.append(f"<= {_g(self.maximum)}")
        if self.divisor_of is not None:
            parts.append(f"divides {self.divisor_of}")
        if parts and self.each:
            parts[0] = f"each {parts[0]}" if parts[0][0] in "<>" else f"each in {parts[0]}"
        if self.min_items is not None and self.min_items == self.max_items:
            parts.append(f"exactly {self.min_items} values")
        elif self.min_items is not None or self.max_items is not None:
            parts.append(_count(self.min_items, self.max_items, "items"))
        if self.min_length is not None or self.max_length is not None:
            parts.append(_count(self.min_length, self.max_length, "characters"))
        if self.pattern is not None:
            parts.append(f"matches `{self.pattern}`")
        if self.one_of is not None:
            parts.append("one of " + ", ".join(f"`{x}`" for x in self.one_of))
        return ", ".join(parts)


def _count(lo: int | None, hi: int | None, what: str) -> str:
    if lo is not None and hi is not None:
        return f"{lo}-{hi} {what}"
    return f"at least {lo} {what}" if lo is not None else f"at most {hi} {what}"


def _g(x: float) -> str:
    return f"{x:g}"


_POS = Bound(exclusive_minimum=0)
_NONNEG = Bound(minimum=0)
_FRAC = Bound(minimum=0, maximum=1)
_ETA = Bound(exclusive_minimum=0, maximum=1)
_DR = dr_checks.DrBounds()

#: Every bound :mod:`vpp.park.config` enforces, by (dataclass or YAML object, field).
BOUNDS: dict[tuple[str, str], Bound] = {
    ("GridConnection", "transformer_kva"): _POS,
    ("GridConnection", "import_max_kw"): _NONNEG,
    ("GridConnection", "export_max_kw"): _NONNEG,
    ("GridConnection", "power_factor_min"): _ETA,
    ("Transformer", "sn_kva"): _POS,
    ("Line", "length_km"): _POS,
    ("PvArray", "kwp"): _POS,
    ("PvArray", "inverter_kw"): _POS,
    ("PvArray", "tilt_deg"): Bound(minimum=0, maximum=90),
    ("PvArray", "azimuth_deg"): Bound(minimum=0, maximum=360),
    ("PvArray", "losses_frac"): _FRAC,
    ("Battery", "e_kwh"): _POS,
    ("Battery", "p_charge_max_kw"): _NONNEG,
    ("Battery", "p_discharge_max_kw"): _NONNEG,
    ("Battery", "eta_charge"): _ETA,
    ("Battery", "eta_discharge"): _ETA,
    ("Battery", "soc_min_frac"): _FRAC,
    ("Battery", "soc_max_frac"): _FRAC,
    ("Battery", "soc_init_frac"): _FRAC,
    ("Battery", "degradation_cny_per_kwh"): _NONNEG,
    ("ChargeTaper", "soc_start_frac"): _FRAC,
    ("ChargeTaper", "floor_frac"): _FRAC,
    ("EfficiencySegment", "p_max_frac"): Bound(exclusive_minimum=0, maximum=1),
    ("EfficiencySegment", "eta_charge"): _ETA,
    ("EfficiencySegment", "eta_discharge"): _ETA,
    ("EvCharger", "p_max_kw"): _POS,
    ("EvCharger", "p_min_kw"): _NONNEG,
    ("EvCharger", "eta"): _ETA,
    ("EvCharger", "phase"): Bound(one_of=m.PHASES),
    ("EvCharger", "voltage_v"): _POS,
    ("PilotCurrents", "min_a"): _POS,
    ("PilotCurrents", "step_a"): _POS,
    ("PilotCurrents", "values_a"): Bound(exclusive_minimum=0, each=True),
    ("LimitGroup", "name"): Bound(min_length=1),
    ("LimitGroup", "import_max_kw"): _NONNEG,
    ("LimitGroup", "export_max_kw"): _NONNEG,
    ("LimitGroup", "current_max_a"): _NONNEG,
    ("LimitGroup", "phase_current_max_a"): _NONNEG,
    ("LimitGroup", "voltage_v"): _POS,
    ("LimitGroup", "power_factor"): _ETA,
    ("EvChargerGroup", "prefix"): Bound(min_length=1),
    ("EvChargerGroup", "count"): Bound(minimum=1),
    ("ShiftableLoad", "e_kwh"): _NONNEG,
    ("ShiftableLoad", "p_max_kw"): _POS,
    ("ShiftableLoad", "p_min_kw"): _NONNEG,
    ("ShiftableLoad", "min_run_steps"): Bound(minimum=1),
    ("CurtailableLoad", "curtail_max_frac"): _FRAC,
    ("CurtailableLoad", "cost_cny_per_kwh"): _NONNEG,
    ("Profile", "scale"): _NONNEG,
    ("PedfBuilding", "converter_kw"): _POS,
    ("PedfBuilding", "converter_eta"): _ETA,
    ("Tariff", "tiers_cny_per_kwh"): Bound(minimum=0, each=True),
    ("Tariff", "demand_charge_cny_per_kw_month"): _NONNEG,
    ("Meter", "value_added_10k_cny_per_year"): Bound(exclusive_minimum=0),
    ("TariffSeason", "months"): Bound(minimum=1, maximum=12, each=True),
    ("EmissionFactor", "ef_kg_per_kwh"): Bound(minimum=0, maximum=2),
    ("EmissionFactor", "hourly_ef_kg_per_kwh"): Bound(min_items=24, max_items=24),
    ("Carbon", "carbon_price_cny_per_t"): _NONNEG,
    ("CarbonFactorsRef", "carbon_price_cny_per_t"): _NONNEG,
    ("CarbonFactorsRef", "hourly_ef_kg_per_kwh"): Bound(min_items=24, max_items=24),
    ("EnergySeries", "network_cny_per_kwh"): _NONNEG,
    ("EnergySeries", "fund_cny_per_kwh"): _NONNEG,
    ("EvSession", "e_needed_kwh"): _NONNEG,
    ("EvFleet", "plug_in_prob"): _FRAC,
    ("EvFleet", "arrival_mean_h"): Bound(minimum=0, maximum=24),
    ("EvFleet", "dwell_mean_h"): _POS,
    ("EvFleet", "e_mean_kwh"): _NONNEG,
    ("DemandResponseEvent", "event_id"): Bound(
        min_length=1, max_length=dr_checks.TEXT_MAX_CHARS, pattern=dr_checks.EVENT_ID_PATTERN
    ),
    ("DemandResponseEvent", "issuer"): Bound(max_length=dr_checks.TEXT_MAX_CHARS),
    ("DemandResponseEvent", "windows"): Bound(min_items=1, max_items=_DR.windows_max),
    ("DemandResponseEvent", "requested_kw"): _NONNEG,
    ("DemandResponseEvent", "cleared_kw"): _NONNEG,
    ("DemandResponseEvent", "price_cap_cny_per_mwh"): _NONNEG,
    ("DemandResponseEvent", "price_floor_cny_per_mwh"): _NONNEG,
    ("DemandResponseEvent", "subsidy_cny_per_kwh"): _NONNEG,
    ("DemandResponseEvent", "subsidy_cny_per_kw"): _NONNEG,
    ("DemandResponseEvent", "nonperformance_cny_per_kwh"): _NONNEG,
    ("DemandResponseEvent", "baseline_method"): Bound(
        one_of=tuple(x.value for x in dr_checks.DrBaselineMethod)
    ),
    ("DemandResponseEvent", "effective_band_frac"): Bound(
        minimum=0, maximum=_DR.band_max_frac, each=True
    ),
    ("DemandResponseEvent", "min_duration"): Bound(
        minimum=0, maximum=_DR.min_duration_max.total_seconds()
    ),
    ("DrTerms", "subsidy_cny_per_kwh"): _NONNEG,
    ("DrTerms", "subsidy_cny_per_kw"): _NONNEG,
    ("DrTerms", "nonperformance_cny_per_kwh"): _NONNEG,
    ("DrPolicy", "margin_frac"): _FRAC,
    ("DispatchSettings", "horizon_steps"): Bound(minimum=1),
    ("DispatchSettings", "step_minutes"): Bound(minimum=1, divisor_of=1440),
    ("DispatchSettings", "risk_frac"): Bound(minimum=0, maximum=m.RISK_FRAC_MAX),
    ("DispatchSettings", "margin_window_days"): Bound(minimum=1, maximum=60),
    ("DispatchSettings", "peak_spread_cny_per_kw"): Bound(minimum=0, maximum=100),
    ("DispatchSettings", "import_ramp_cny_per_kw"): Bound(minimum=0, maximum=100),
    **{("Penalties", f.name): _POS for f in dataclasses.fields(m.Penalties)},
    ("Penalties", "give_way_first_factor"): _ETA,
    ("Penalties", "give_way_last_factor"): Bound(minimum=1),
}

#: What :mod:`vpp.park.config` checks beyond bounds (relations a JSON Schema cannot state).
CROSS_CHECKS: dict[str, tuple[str, ...]] = {
    "ParkFile": (
        "every `bus` an asset, the connection, a transformer or a cable names is a bus of "
        "`buses`; bus names are unique",
        "asset names are unique across all asset kinds (PEDF members included)",
    ),
    "Location": ("`tz` is a known IANA time zone",),
    "Network": ("`v_min_pu` < `v_max_pu`",),
    "Battery": (
        "`soc_min_frac` <= `soc_max_frac`",
        "`efficiency_segments`: `p_max_frac` rising; each efficiency at most the one before "
        "(efficiency falls with power: the dispatch stays an LP)",
    ),
    "EvCharger": (
        "`p_min_kw` <= `p_max_kw`",
        "with `pilot`, at least one pilot current gives a power in [`p_min_kw`, `p_max_kw`]",
    ),
    "PilotCurrents": ("`max_a` >= `min_a`",),
    "LimitGroup": (
        "names are unique; every asset, bus and child group it names exists; no group "
        "contains itself through its children; at least one member and one limit",
        "`voltage_v` is given with `current_max_a` or `phase_current_max_a`",
    ),
    "ShiftableLoad": ("`p_min_kw` <= `p_max_kw`",),
    "PvArray": ("`weather` is a known `simbench:<PV profile>`",),
    "Profile": ("`source` is a known `simbench:<load profile>`",),
    "PedfBuilding": ("its members sit on the building's bus (behind its converter)",),
    "EvSession": ("`charger` is a known charger; `departure` is after `arrival`",),
    "EvFleet": ("every charger of `chargers` is a known charger",),
    "Tariff": (
        "`default_tier` and every period's `tier` are keys of `tiers_cny_per_kwh`",
        "every month 1-12 is in exactly one season",
        "`valid_to` is not before `valid_from`",
    ),
    "TariffSeason": (
        "there is a `workday` schedule; a `weekend` one only with `weekend_as: weekend`",
        "each day type's periods cover the 24 hours exactly once, on whole minutes",
    ),
    "ParkCalendar": (
        "no date twice, none both holiday and working day; make-up working days are "
        "Saturdays or Sundays; a block `A..B` runs forwards over at most 32 days",
        "a year the `chinese_calendar` package does not know lists its statutory holidays",
    ),
    "DemandResponseEvent": (
        "`event_id` is unique (in the park file and the scenario files added to it)",
        "`requested_kw` > 0 unless `import_cap_kw` or `cleared_kw` is given",
        "`requested_kw` and `cleared_kw` <= `import_max_kw` + `export_max_kw`; "
        "`import_cap_kw` in [-`export_max_kw`, `import_max_kw`] of the connection",
        "`effective_band_frac` low <= high; `price_floor_cny_per_mwh` <= `price_cap_cny_per_mwh`",
        "`announce_time` <= `confirm_deadline` <= the first window's start; every time in "
        "the years 2000-2099; `issuer` is printable text",
    ),
    "DrWindow": (
        "a window ends after it starts and lasts one dispatch step to 24 h; the windows of "
        "an event do not overlap and lie within 24 h",
    ),
    "DispatchSettings": ("`step_minutes` divides a day (1440 minutes)",),
    "Meter": (
        "`name` is non-empty, unique and not `common` (the park's own meter: every bus in no "
        "tenant meter); at least one bus; every bus is a bus of `buses`, in at most one meter",
    ),
}


# --------------------------------------------------------------------------------------------
# Units, from the name
# --------------------------------------------------------------------------------------------
_UNIT_SUFFIXES = (
    ("_10k_cny_per_year", "10^4 CNY/year"),
    ("_cny_per_kw_month", "CNY/(kW month)"),
    ("_cny_per_kwh", "CNY/kWh"),
    ("_cny_per_mwh", "CNY/MWh"),
    ("_cny_per_kw", "CNY/kW"),
    ("_cny_per_t", "CNY/t CO2"),
    ("_kgce_per_kwh", "kgce/kWh"),
    ("_kg_per_kwh", "kg CO2/kWh"),
    ("_pdc_per_c", "1/degC"),
    ("_kwh", "kWh"),
    ("_kw", "kW"),
    ("_kva", "kVA"),
    ("_kv", "kV"),
    ("_a", "A"),
    ("_v", "V"),
    ("_frac", "fraction (0-1)"),
    ("_prob", "probability (0-1)"),
    ("_pu", "p.u."),
    ("_percent", "%"),
    ("_km", "km"),
    ("_deg", "degree"),
    ("_m", "m"),
    ("_h", "h"),
    ("_minutes", "min"),
    ("_steps", "intervals"),
    ("_s", "s"),
)
_UNIT_NAMES = {
    "kwp": "kWp",
    "eta": "fraction (0-1)",
    "months": "month (1-12)",
    "mip_rel_gap": "fraction",
    "count": "chargers",
    "parallel": "cables",
    "min_duration": "duration (ISO 8601 such as PT1H, or seconds)",
}


def unit_of(name: str) -> str:
    """The unit a field's name states (``p_max_kw`` -> ``kW``), or ``""`` when it has none."""
    if name in _UNIT_NAMES:
        return _UNIT_NAMES[name]
    if name.startswith("eta_") or name.endswith("_eta"):
        return _UNIT_NAMES["eta"]
    for suffix, unit in _UNIT_SUFFIXES:
        if name.endswith(suffix):
            return unit
    return ""


# --------------------------------------------------------------------------------------------
# Meanings, from the model's docstrings and comments
# --------------------------------------------------------------------------------------------
_SENTENCE_END = re.compile(r"(?<!e\.g\.)(?<!i\.e\.)(?<=\.)\s+(?=[A-Z`(])")

#: Meanings of what only the YAML has (the model's docstrings say the rest).
YAML_MEANINGS: dict[tuple[str, str], str] = {
    ("ParkFile", "site"): "The site: its name, location and economic size.",
    ("ParkFile", "connection"): "The park's point of common coupling with the utility.",
    ("ParkFile", "buses"): "The nodes of the park's network.",
    ("ParkFile", "network"): "Transformers, cables and network limits.",
    ("ParkFile", "assets"): "Everything the dispatch controls or forecasts.",
    ("ParkFile", "tariff"): "A tariff file (path relative to the park file) or an inline tariff.",
    ("ParkFile", "carbon"): "An entry of a factor catalogue (`factors: FILE`) or inline factors.",
    ("ParkFile", "penalties"): "Cost of relaxing each constraint.",
    ("ParkFile", "dispatch"): "Horizon, step and solver of the dispatch.",
    ("ParkFile", "dr_events"): "Demand-response calls known in advance.",
    ("ParkFile", "dr_defaults"): "DR compensation terms when an event has none of its own.",
    ("ParkFile", "dr_policy"): "What the park does with a DR invitation on receipt.",
    ("ParkFile", "ev_sessions"): "Known EV sessions (naive times in the site's zone).",
    ("ParkFile", "ev_fleets"): "Seeded generators of EV sessions (demo, simulation).",
    ("ParkFile", "calendar"): "The park's own public holidays and make-up working days.",
    ("ParkFile", "limit_groups"): "Named limits on groups of assets or buses (nested).",
    ("SiteHeader", "name"): "Name of the park.",
    ("SiteHeader", "location"): "Where the park is (PV geometry, time zone).",
    ("SiteHeader", "value_added_10k_cny_per_year"): "Value added of the park, for intensity.",
    ("Location", "tz"): "IANA time zone; datetimes without an offset are in it.",
    ("Assets", "ev_charger_groups"): "Groups of identical chargers, expanded by the loader.",
    ("EvChargerGroup", "prefix"): "Chargers are named `prefix-01`, `prefix-02`, ...",
    ("EvChargerGroup", "count"): "How many identical chargers.",
    ("EvChargerGroup", "fleet"): "The fleet that uses these chargers (named after `prefix`).",
    ("EvChargerGroupFleet", "name"): "Name of the fleet (default: the group's `prefix`).",
    ("CarbonFactorsRef", "factors"): "Factor catalogue, path relative to the park file.",
    ("CarbonFactorsRef", "region"): "Region of the catalogue entry to use.",
    ("CarbonFactorsRef", "year"): "Year of the catalogue entry to use.",
    ("CarbonFactorsRef", "series"): "A dated emission-factor series beside the entry's factor.",
}


@functools.cache
def _source_comments(cls: type) -> dict[str, str]:
    """Field comments in a dataclass's source: the one at the end of the field's line, else
    the comment lines right above it."""
    try:
        lines = inspect.getsource(cls).splitlines()
    except (OSError, TypeError):
        return {}
    names = {f.name for f in dataclasses.fields(cls)}
    out: dict[str, str] = {}
    above: list[str] = []
    for line in lines[1:]:
        text = line.strip()
        if text.startswith("#"):
            above.append(text.lstrip("#").strip())
            continue
        match = re.match(r"(\w+)\s*:", text)
        if match and match.group(1) in names:
            trailing = line.split("  # ", 1)[1].strip() if "  # " in line else ""
            comment = trailing or " ".join(above)
            if comment:
                out[match.group(1)] = comment
        above = []
    return out


def _plain(text: str) -> str:
    """Docstring markup as Markdown: ``x`` -> `x`, no Sphinx roles (:class:, :mod:, ...)."""
    return re.sub(r":(class|mod|func|data|meth|attr):`", "`", text.replace("``", "`"))


def _first_sentence(text: str) -> str:
    text = " ".join(text.split())
    first = _plain(_SENTENCE_END.split(text, maxsplit=1)[0])
    return first if first.endswith(".") else f"{first}."


def meaning_of(def_name: str, field: str) -> str:
    """A one-line meaning of a field: the model's comment on it, else the sentence of its
    class's docstring that names it, else what the YAML adds (:data:`YAML_MEANINGS`)."""
    if (def_name, field) in YAML_MEANINGS:
        return YAML_MEANINGS[(def_name, field)]
    cls = getattr(m, def_name, None)
    if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
        return ""
    comment = _source_comments(cls).get(field)
    if comment:
        return _first_sentence(comment)
    doc = " ".join(_docstring(cls).split())
    for sentence in _SENTENCE_END.split(doc):
        if f"``{field}``" in " ".join(sentence.split()[:3]):  # a sentence about the field
            return _first_sentence(sentence)
    return ""


def class_meaning(def_name: str) -> str:
    """The first paragraph of a dataclass's docstring, on one line (``""`` without one)."""
    doc = _docstring(getattr(m, def_name, None))
    return _plain(" ".join(doc.split("\n\n")[0].split()))


def _docstring(cls: Any) -> str:
    """A class's own docstring; ``""`` for a dataclass's generated signature."""
    doc = inspect.getdoc(cls) if isinstance(cls, type) and cls.__doc__ else ""
    return "" if not doc or doc.startswith(f"{cls.__name__}(") else doc


# --------------------------------------------------------------------------------------------
# The schemas
# --------------------------------------------------------------------------------------------
_TIME = {"type": "string", "pattern": r"^([01]\d|2[0-3]):[0-5]\d(:[0-5]\d(\.\d+)?)?$"}
_DATETIME = {
    "type": "string",
    "pattern": r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}(:?\d{2})?)?$",
}


_DAY_BLOCK = {
    "type": "string",
    "pattern": r"^\d{4}-\d{2}-\d{2}\s*\.\.\s*\d{4}-\d{2}-\d{2}$",
    "description": "A block of days, both ends included: 2027-02-06..2027-02-12.",
}


def park_schema() -> dict[str, Any]:
    """The JSON Schema of a park file (``configs/parks/*.yaml``), as a JSON-ready dict."""
    base = TypeAdapter(m.Site).json_schema()
    defs = {name: _def(name, node) for name, node in base["$defs"].items()}
    site = _def("Site", {k: v for k, v in base.items() if k != "$defs"})
    _add_yaml_defs(defs, site)
    props = site["properties"]
    header = ("name", "location", "value_added_10k_cny_per_year")
    keys = ("connection", "buses", "network", "assets", "penalties", "dispatch")
    keys += ("dr_events", "dr_defaults", "dr_policy", "ev_sessions", "ev_fleets")
    keys += tuple(k for k in props if k not in (*keys, *header, "tariff", "carbon"))
    root_props: dict[str, Any] = {"site": {"$ref": "#/$defs/SiteHeader"}}
    root_props |= {k: props[k] for k in keys}
    root_props["tariff"] = {
        "anyOf": [
            {"type": "string", "description": "Tariff file, path relative to the park file."},
            {"$ref": "#/$defs/Tariff"},
        ]
    }
    root_props["carbon"] = {
        "anyOf": [{"$ref": "#/$defs/CarbonFactorsRef"}, {"$ref": "#/$defs/Carbon"}]
    }
    order = ("site", "connection", "buses", "network", "assets", "tariff", "carbon")
    order += keys[4:]
    root_props = {k: _prop("ParkFile", k, _raw(root_props[k])) for k in order}
    defs["SiteHeader"] = _object(
        "SiteHeader",
        {k: _prop("SiteHeader", k, _raw(props[k])) for k in header},
        ["name", "location"],
        "The site: name, location and the value added its intensity figures use.",
    )
    root = _object(
        "ParkFile",
        root_props,
        ["site", "connection", "buses", "tariff", "carbon"],
        "A park-vpp park file (vpp.park.config.load_site).",
    )
    return {"$schema": DIALECT, "title": "park-vpp park file", **root, "$defs": defs}


def tariff_schema() -> dict[str, Any]:
    """The JSON Schema of a tariff file (``configs/tariffs/*.yaml``), as a JSON-ready dict."""
    base = TypeAdapter(m.Tariff).json_schema()
    defs = {name: _def(name, node) for name, node in base["$defs"].items()}
    root = _def("Tariff", {k: v for k, v in base.items() if k != "$defs"})
    return {"$schema": DIALECT, "title": "park-vpp tariff file", **root, "$defs": defs}


_GROUP_CHARGER_FIELDS = ("bus", "p_max_kw", "p_min_kw", "v2g", "eta", "give_way")
_GROUP_CHARGER_FIELDS += ("phase", "voltage_v", "pilot")


def _add_yaml_defs(defs: dict[str, Any], site: dict[str, Any]) -> None:
    """The objects only the YAML has: charger groups, their fleet, a factor catalogue entry."""
    charger = defs["EvCharger"]["properties"]
    fleet = defs["EvFleet"]["properties"]
    group_props = {
        "prefix": _prop("EvChargerGroup", "prefix", {"type": "string"}),
        "count": _prop("EvChargerGroup", "count", {"type": "integer"}),
        **{k: charger[k] for k in _GROUP_CHARGER_FIELDS},
        "fleet": _prop(
            "EvChargerGroup",
            "fleet",
            {"anyOf": [{"$ref": "#/$defs/EvChargerGroupFleet"}, {"type": "null"}]},
        ),
    }
    defs["EvChargerGroup"] = _object(
        "EvChargerGroup",
        group_props,
        ["prefix", "count", "bus", "p_max_kw"],
        "`count` identical chargers named `prefix-NN`, and the fleet that uses them.",
    )
    fleet_props = {
        "name": _prop("EvChargerGroupFleet", "name", {"type": "string"}),
        **{k: v for k, v in fleet.items() if k not in ("name", "chargers")},
    }
    defs["EvChargerGroupFleet"] = _object(
        "EvChargerGroupFleet",
        fleet_props,
        [],
        "How cars use the group's chargers (an EV fleet without `chargers`).",
    )
    defs["Assets"]["properties"]["ev_charger_groups"] = _prop(
        "Assets",
        "ev_charger_groups",
        {"type": "array", "items": {"$ref": "#/$defs/EvChargerGroup"}, "default": []},
    )
    meter = defs.get("Meter", {}).get("properties", {})
    if "tariff" in meter:  # a tariff file, as the site's, or inline; null: the site's
        meter["tariff"] = _prop(
            "Meter",
            "tariff",
            {
                "anyOf": [
                    {
                        "type": "string",
                        "description": "Tariff file, path relative to the park file.",
                    },
                    {"$ref": "#/$defs/Tariff"},
                    {"type": "null"},
                ],
                "default": None,
            },
        )
    for key in defs.get("ParkCalendar", {}).get("properties", {}):
        days = defs["ParkCalendar"]["properties"][key]
        days["items"] = {"anyOf": [days["items"], _DAY_BLOCK]}
    carbon = defs["Carbon"]["properties"]
    ef = defs["EmissionFactor"]["properties"]
    ref_props = {
        "factors": _prop("CarbonFactorsRef", "factors", {"type": "string"}),
        "region": _prop("CarbonFactorsRef", "region", {"type": "string"}),
        "year": _prop("CarbonFactorsRef", "year", {"type": "integer"}),
        "carbon_price_cny_per_t": _prop(
            "CarbonFactorsRef", "carbon_price_cny_per_t", _raw(carbon["carbon_price_cny_per_t"])
        ),
        "hourly_ef_kg_per_kwh": _prop(
            "CarbonFactorsRef", "hourly_ef_kg_per_kwh", _raw(ef["hourly_ef_kg_per_kwh"])
        ),
        "series": _prop("CarbonFactorsRef", "series", _raw(ef["series"])),
    }
    defs["CarbonFactorsRef"] = _object(
        "CarbonFactorsRef",
        ref_props,
        ["factors", "region", "year"],
        "One entry (region, year) of an emission-factor catalogue file.",
    )


def _raw(prop: dict[str, Any]) -> dict[str, Any]:
    """A property without the annotations :func:`_prop` adds (to annotate it anew)."""
    drop = ("description", "x-unit", "x-bounds", "minItems", "maxItems")
    out = {k: v for k, v in copy.deepcopy(prop).items() if k not in drop}
    for branch in out.get("anyOf", []):
        for k in ("minimum", "exclusiveMinimum", "maximum", "enum", "minItems", "maxItems"):
            branch.pop(k, None)
    return out


#: Fields the loader sets, not the YAML.
LOADER_FIELDS = {
    ("Site", "source_file"),
    ("Tariff", "source_file"),
    ("EnergySeries", "points"),
    ("EmissionFactorSeries", "points"),
}


def _def(name: str, node: dict[str, Any]) -> dict[str, Any]:
    """One of pydantic's definitions, reshaped: no titles, closed objects, annotated fields."""
    node = _formats(copy.deepcopy(node))
    node.pop("title", None)
    if "properties" not in node:
        return node
    props = {
        k: _prop(name, k, v)
        for k, v in node["properties"].items()
        if (name, k) not in LOADER_FIELDS
    }
    return _object(name, props, node.get("required", []), class_meaning(name))


def _object(
    name: str, props: dict[str, Any], required: list[str], description: str
) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "object"}
    if description:
        out["description"] = description
    out["properties"] = props
    if required:
        out["required"] = list(required)
    out["additionalProperties"] = False
    out["x-object"] = name
    return out


def _prop(def_name: str, field: str, node: dict[str, Any]) -> dict[str, Any]:
    """A field with its meaning, unit and bounds (in ``description`` too, for editors)."""
    node = {k: v for k, v in node.items() if k != "title"}
    unit = unit_of(field)
    bound = BOUNDS.get((def_name, field))
    if bound is not None:
        _apply_bound(node, bound)
    words = [meaning_of(def_name, field)]
    if unit:
        node["x-unit"] = unit
        words.append(f"Unit: {unit}" + ("" if unit.endswith(".") else "."))
    if bound is not None:
        node["x-bounds"] = bound.text()
        words.append(f"Bounds: {bound.text()}.")
    text = " ".join(w for w in words if w)
    if text:
        node = {"description": text, **node}
    return node


def _apply_bound(node: dict[str, Any], bound: Bound) -> None:
    for branch in node.get("anyOf", [node]):
        kind = branch.get("type")
        if kind == "array" and bound.min_items is not None:
            branch["minItems"] = bound.min_items
        if kind == "array" and bound.max_items is not None:
            branch["maxItems"] = bound.max_items
        targets = [branch]
        if bound.each:
            items = branch.get("prefixItems") or [branch.get("items")]
            targets = [*items, branch.get("additionalProperties")]
        for target in targets:
            if isinstance(target, dict):
                target.update(bound.keywords(target.get("type", "")))


def _formats(node: Any) -> Any:
    """Replace pydantic's ``time``/``date-time`` formats with what the YAML takes: ``HH:MM``,
    and datetimes that may omit the offset (the site's zone); durations may be seconds."""
    if isinstance(node, list):
        return [_formats(x) for x in node]
    if not isinstance(node, dict):
        return node
    fmt = node.get("format")
    if fmt == "time":
        return {**{k: v for k, v in node.items() if k != "format"}, **_TIME}
    if fmt == "date-time":
        return {**{k: v for k, v in node.items() if k != "format"}, **_DATETIME}
    if fmt == "duration":
        rest = {k: v for k, v in node.items() if k not in ("format", "type")}
        return {"anyOf": [{"type": "string", "format": "duration"}, {"type": "number"}], **rest}
    return {k: _formats(v) for k, v in node.items()}


# --------------------------------------------------------------------------------------------
# Walking the schema: where each object sits in the YAML
# --------------------------------------------------------------------------------------------
def _resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    return schema["$defs"][ref.rsplit("/", 1)[1]] if ref else node


def object_paths(schema: dict[str, Any]) -> list[tuple[str, str]]:
    """Every ``(path, object)`` of the schema, in document order: ``("assets.batteries[]",
    "Battery")``, ``("assets.pedf_buildings[].battery", "Battery")``, ..."""
    out: list[tuple[str, str]] = [("", "ParkFile" if "site" in schema["properties"] else "")]

    def visit(node: dict[str, Any], path: str) -> None:
        node = _resolve(schema, node)
        if "x-object" in node:
            if path:
                out.append((path, node["x-object"]))
            for key, sub in node["properties"].items():
                visit(sub, f"{path}.{key}" if path else key)
        for branch in node.get("anyOf", []):
            visit(branch, path)
        if isinstance(node.get("items"), dict):
            visit(node["items"], f"{path}[]")
        if isinstance(node.get("additionalProperties"), dict):
            visit(node["additionalProperties"], f"{path}.<key>")

    for key, sub in schema["properties"].items():
        visit(sub, key)
    return out


def instances(schema: dict[str, Any], doc: Any) -> Iterator[tuple[str, str, str, dict]]:
    """Every object of a parsed YAML document, as ``(path, pattern, object, mapping)``:
    ``("assets.batteries[2]", "assets.batteries[]", "Battery", {...})``."""
    yield from _instances(schema, schema, doc, "", "")


def _instances(schema, node, value, path, pattern) -> Iterator[tuple[str, str, str, dict]]:
    node = _resolve(schema, node)
    if "anyOf" in node:
        for branch in node["anyOf"]:
            if _fits(schema, branch, value):
                yield from _instances(schema, branch, value, path, pattern)
                return
        return
    if "x-object" in node and isinstance(value, dict):
        yield path, pattern, node["x-object"], value
        for key, sub in value.items():
            if key in node["properties"]:
                p = f"{path}.{key}" if path else key
                q = f"{pattern}.{key}" if pattern else key
                yield from _instances(schema, node["properties"][key], sub, p, q)
    elif isinstance(node.get("items"), dict) and isinstance(value, list):
        for i, item in enumerate(value):
            yield from _instances(schema, node["items"], item, f"{path}[{i}]", f"{pattern}[]")
    elif isinstance(node.get("additionalProperties"), dict) and isinstance(value, dict):
        for key, sub in value.items():
            sub_node = node["additionalProperties"]
            yield from _instances(schema, sub_node, sub, f"{path}.{key}", f"{pattern}.<key>")


def _fits(schema: dict[str, Any], branch: dict[str, Any], value: Any) -> bool:
    node = _resolve(schema, branch)
    kind = node.get("type")
    if "x-object" in node:
        keys = set(value) if isinstance(value, dict) else None
        return keys is not None and set(node.get("required", [])) <= keys <= set(node["properties"])
    if kind == "null":
        return value is None
    if kind == "array":
        return isinstance(value, list)
    if kind == "string":
        return isinstance(value, str)
    return value is not None
