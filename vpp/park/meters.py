"""Tenant sub-meters of a park (转供电): who measures which bus, and the checks of the
``metering`` section of the park file.

The rule, once: a bus belongs to at most one tenant meter (:class:`vpp.park.model.Meter`);
every bus in no tenant meter belongs to the park's own residual meter ``common`` (shared
services, the connection's own bus), billed at the site's tariff. The tenant meters and the
common meter partition the park's buses, so what they measure sums to the connection's net.

Pure: no I/O. :mod:`vpp.park.config` calls :func:`metering_problems` on a loaded site.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from vpp.park import model as m
from vpp.park.tariff_checks import tariff_problems
from vpp.park.value_checks import positive


@dataclass(frozen=True)
class BilledMeter:
    """A meter as the bill sees it: a tenant's, or the park's ``common`` residual one.

    ``tariff`` is resolved (the site's where the meter names none); ``common`` is True for the
    park's residual meter.
    """

    name: str
    buses: tuple[str, ...]
    tariff: m.Tariff
    value_added_10k_cny_per_year: float | None = None
    common: bool = False


def billed_meters(site: m.Site) -> tuple[BilledMeter, ...]:
    """Every tenant meter of ``site`` in file order, then the ``common`` meter when some bus
    is in no tenant meter (a park without meters: one common meter over every bus)."""
    out = [
        BilledMeter(x.name, tuple(x.buses), x.tariff or site.tariff, x.value_added_10k_cny_per_year)
        for x in site.metering.meters
    ]
    taken = {b for x in site.metering.meters for b in x.buses}
    rest = tuple(b for b in site.bus_names() if b not in taken)
    if rest:
        out.append(BilledMeter(m.COMMON_METER, rest, site.tariff, None, common=True))
    return tuple(out)


def meter_of_bus(site: m.Site) -> dict[str, str]:
    """The meter (a tenant's name, or ``common``) that measures each bus of ``site``."""
    return {b: x.name for x in billed_meters(site) for b in x.buses}


def per_meter(site: m.Site) -> bool:
    """True when the contract bills each meter on its own (no netting across meters)."""
    return m.Billing(site.metering.billing) is m.Billing.PER_METER


def metering_problems(site: m.Site) -> Iterable[str]:
    """Every problem of ``site.metering``, each with its field path: a meter without a name
    or buses, a name used twice (or ``common``), an unknown bus, a bus in two meters, a value
    added that is not positive, and its tariff's own problems."""
    buses = site.bus_names()
    known = set(buses)
    owner: dict[str, tuple[str, int]] = {}
    names: dict[str, int] = {}
    for i, x in enumerate(site.metering.meters):
        p = f"metering.meters[{i}]"
        if not x.name.strip():
            yield f"{p}.name: must not be empty"
        elif x.name == m.COMMON_METER:
            yield (
                f"{p}.name: {m.COMMON_METER!r} is the park's own meter (the buses in no "
                "tenant meter); choose another name"
            )
        elif x.name in names:
            yield f"{p}.name: {x.name!r} is already the name of metering.meters[{names[x.name]}]"
        else:
            names[x.name] = i
        if not x.buses:
            yield f"{p}.buses: meter {x.name!r} measures no bus; list at least one"
        for j, b in enumerate(x.buses):
            if b not in known:
                yield f"{p}.buses[{j}]: unknown bus {b!r} (meter {x.name!r}); buses are {buses}"
            elif b in owner:
                other, k = owner[b]
                yield (
                    f"{p}.buses[{j}]: bus {b!r} is already measured by meter {other!r} "
                    f"(metering.meters[{k}]); a bus belongs to at most one meter"
                )
            else:
                owner[b] = (x.name, i)
        if x.value_added_10k_cny_per_year is not None:
            yield from positive(f"{p}.value_added_10k_cny_per_year", x.value_added_10k_cny_per_year)
        if x.tariff is not None:
            yield from tariff_problems(x.tariff, f"{p}.tariff.")
