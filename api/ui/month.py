"""The Month-to-date view's document: what the park did since the first of the month (local
time) up to the interval running now, from the park meter's stored readings.

* energy cost: import x the tariff's price of each interval (its energy series where it
  covers, else the TOU price), less export x the export price;
* demand charge: the tariff's monthly rate x the month's peak import so far (a peak sets the
  whole month's charge, whenever in the month it happens), with when the peak was;
* DR compensation: the settled events whose window started this month;
* CO2 (location-based, :mod:`vpp.accounting.carbon`) and standard coal by both methods,
  against the park's targets (energy intensity 0.4 tce per 10,000 CNY of value added; CO2
  intensity 4 % below the same period of last year, 52 weeks earlier, when stored).

Intervals without a park-meter reading count nothing; ``intervals_metered`` says how many
had one. Every figure here is measured.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Any

import numpy as np
from sqlalchemy import select

from api.ui.figures import _floor
from vpp.accounting import carbon
from vpp.park import tariff as tariffs
from vpp.park.carbon_factors import series_ef_kg_per_kwh
from vpp.park.model import Horizon
from vpp.store import metered, tables
from vpp.store import series as store_series

YEAR_BEFORE_WEEKS = 52


def _series(conn, site, h: Horizon) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Park meter (kW, NaN without a reading), PV used (kW) and import price (CNY/kWh) of
    every interval of ``h``."""
    if h.n == 0:
        return np.zeros(0), np.zeros(0), np.zeros(0)
    net = metered.park_meter_kw(conn, h)
    pv, _, _ = metered._pv_used_kw(conn, site, h)
    # The tariff's energy series (the park file's and the posted rows) where it covers, as
    # known at the period's end, else the TOU price (vpp.park.series).
    end = h.start + h.n * h.step
    posted = store_series.series_between(conn, "price", h.start, end)
    price, _, _ = tariffs.series_prices_cny_per_kwh(
        site.tariff, h, end, site.calendar, posted, refuse=False
    )
    return net, pv, price


def _period(conn, site, h: Horizon, split, cache: dict) -> tuple[np.ndarray, ...]:
    """:func:`_series` of ``h``, the days before ``split`` (local midnight today) read once
    and kept in ``cache``, the rest read each time: a cycle reads today only."""
    k = max(min(round((split - h.start) / h.step), h.n), 0)
    key = (h.start, k)
    if key not in cache:
        cache.clear()  # one month (and its year-before) at a time
        cache[key] = _series(conn, site, Horizon(h.start, h.step, k))
    head = cache[key]
    tail = _series(conn, site, Horizon(h.at(k), h.step, h.n - k))
    return tuple(np.concatenate([a, b]) for a, b in zip(head, tail, strict=True))


def _accounts(conn, site, h: Horizon, split, cache: dict) -> dict[str, Any]:
    dt_h = h.step.total_seconds() / 3600.0
    net, pv, price = _period(conn, site, h, split, cache)
    ok = np.isfinite(net)
    net0 = np.where(ok, net, 0.0)
    imp, exp = np.maximum(net0, 0.0), np.maximum(-net0, 0.0)
    pv = np.where(ok, pv, 0.0)  # PV the park used: the arrays' readings (see metered)
    end = h.start + h.n * h.step
    posted = store_series.series_between(conn, "ef", h.start, end)
    ef = np.broadcast_to(series_ef_kg_per_kwh(site.carbon, h, end, posted, refuse=False)[0], (h.n,))
    # Over the metered intervals only: the value added is pro-rated by the days they cover.
    acc = carbon.accounts(
        imp[ok],
        exp[ok],
        pv[ok],
        ef[ok],
        dt_h,
        site.carbon.energy_factors,
        site.value_added_10k_cny_per_year if ok.any() else None,
    )
    return {"net": net, "ok": ok, "imp": imp, "exp": exp, "price": price, "acc": acc}


def document(figs) -> dict[str, Any]:
    rt, site = figs.rt, figs.site
    now = rt.clock.now().astimezone(figs.zone)
    start = datetime.combine(now.date().replace(day=1), time(0), tzinfo=figs.zone)
    end = _floor(now, figs.step)
    n = max(round((end - start) / figs.step), 0)
    h = Horizon(start, figs.step, max(n, 1))
    dt_h = figs.step.total_seconds() / 3600.0
    today = datetime.combine(now.date(), time(0), tzinfo=figs.zone)
    year = timedelta(weeks=YEAR_BEFORE_WEEKS)
    caches = figs.__dict__.setdefault("_month_cache", ({}, {}))
    with rt.engine.connect() as conn:
        this = _accounts(conn, site, h, today, caches[0])
        ly_h = Horizon(start - year, figs.step, h.n)
        last = _accounts(conn, site, ly_h, today - year, caches[1])
        settled = _settlements(conn, start, end)
    if n == 0:
        this["ok"][:] = False
    t = site.tariff
    price = this["price"]
    export_price = tariffs.export_price_cny_per_kwh(t, h)
    ok, imp, exp = this["ok"], this["imp"], this["exp"]
    energy_cny = float(np.sum(np.where(ok, imp * price - exp * export_price, 0.0)) * dt_h)
    peak_i = int(np.argmax(np.where(ok, imp, -1.0))) if ok.any() else None
    peak_kw = float(imp[peak_i]) if peak_i is not None else 0.0
    rate = t.demand_charge_cny_per_kw_month
    acc: carbon.Accounts = this["acc"]
    dr_cny = float(sum(s["compensation_cny"] or 0.0 for s in settled))
    targets = _targets(acc, last, site, int(ok.sum()), h.n)
    return {
        "month": f"{start.year:04d}-{start.month:02d}",
        "from": start.isoformat(),
        "to": end.isoformat(),
        "intervals": n,
        "intervals_metered": int(ok.sum()),
        "tariff": t.name,
        "energy": {
            "import_kwh": round(acc.import_kwh, 1),
            "export_kwh": round(acc.export_kwh, 1),
            "pv_used_kwh": round(acc.pv_used_kwh, 1),
            "consumption_kwh": round(acc.consumption_kwh, 1),
            "energy_cost_cny": round(energy_cny, 2),
        },
        "demand": {
            "peak_import_kw": round(peak_kw, 1),
            "peak_at": h.times()[peak_i].isoformat() if peak_i is not None else None,
            "rate_cny_per_kw_month": rate,
            "demand_charge_cny": round(rate * peak_kw, 2),
        },
        "dr": {
            "compensation_cny": round(dr_cny, 2),
            "events": [
                {
                    "event_id": s["event_id"],
                    "window_start": s["window_start"].isoformat(),
                    "delivered_kwh": s["delivered_kwh"],
                    "requested_kwh": s["requested_kwh"],
                    "effective": s["effective"],
                    "compensation_cny": s["compensation_cny"],
                }
                for s in settled
            ],
        },
        "total_cost_cny": round(energy_cny + rate * peak_kw - dr_cny, 2),
        "carbon": {
            "co2_t": round(acc.co2_t, 3),
            "tce_equivalent": round(acc.tce_equivalent, 3),
            "tce_equal_value": round(acc.tce_equal_value, 3),
            "ef_kg_per_kwh": site.carbon.emission_factor.ef_kg_per_kwh,
            "equivalent_kgce_per_kwh": site.carbon.energy_factors.equivalent_kgce_per_kwh,
            "equal_value_kgce_per_kwh": site.carbon.energy_factors.equal_value_kgce_per_kwh,
        },
        "targets": targets,
    }


def _settlements(conn, start: datetime, end: datetime) -> list[dict[str, Any]]:
    s = tables.dr_settlements
    q = (
        select(s)
        .where(s.c.window_start >= start, s.c.window_start < end)
        .order_by(s.c.window_start)
    )
    return [dict(r._mapping) for r in conn.execute(q)]


def _targets(acc: carbon.Accounts, last: dict[str, Any], site, metered_n: int, n: int):
    """Energy intensity against 0.4 tce per 10,000 CNY (needs the park's value added) and
    CO2 intensity against last year's less 4 % (needs the same period stored 52 weeks
    earlier, 95 % of its intervals)."""
    va = site.value_added_10k_cny_per_year
    intensity = acc.intensity_tce_per_10k_cny
    out: dict[str, Any] = {
        "intensity_tce_per_10k_cny": round(intensity, 5) if intensity is not None else None,
        "intensity_target_tce_per_10k_cny": carbon.INTENSITY_TARGET_TCE_PER_10K_CNY,
        "intensity_met": (
            intensity <= carbon.INTENSITY_TARGET_TCE_PER_10K_CNY if intensity is not None else None
        ),
        "intensity_note": None if va else "the park file gives no value_added_10k_cny_per_year",
        "co2_t_per_10k_cny": (
            round(acc.co2_t_per_10k_cny, 5) if acc.co2_t_per_10k_cny is not None else None
        ),
        "co2_intensity_yoy_target_frac": -carbon.YOY_REDUCTION_TARGET_FRAC,
        "co2_intensity_yoy_change_frac": None,
        "last_year_co2_t": None,
        "yoy_note": None,
        "last_year_intervals_metered": int(last["ok"].sum()),
    }
    covered = int(last["ok"].sum())
    if metered_n == 0 or covered < metered.MIN_DAY_COVERAGE_FRAC * n:
        out["yoy_note"] = (
            f"the same period 52 weeks earlier is not stored ({covered} of {n} intervals metered)"
        )
        return out
    la: carbon.Accounts = last["acc"]
    out["last_year_co2_t"] = round(la.co2_t, 3)
    if acc.co2_t_per_10k_cny is not None and la.co2_t_per_10k_cny:
        change = carbon.yoy_change_frac(acc.co2_t_per_10k_cny, la.co2_t_per_10k_cny)
        out["co2_intensity_yoy_change_frac"] = round(change, 4)
        out["co2_intensity_yoy_met"] = change <= -carbon.YOY_REDUCTION_TARGET_FRAC
    else:
        change = carbon.yoy_change_frac(acc.co2_t, la.co2_t)
        out["co2_yoy_change_frac"] = round(change, 4)
    return out
