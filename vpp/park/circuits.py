"""Circuits in the park: the currents a charger's pilot can take, the phases a single-phase
asset hangs on, and limit groups (a circuit, a panel, a pod of chargers) that cap what a set of
assets draws together. Frozen dataclasses, no I/O; :mod:`vpp.park.model` re-exports them."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class PilotCurrents:
    """The currents a charger's pilot can be set to, besides 0: ``values_a`` when given (a
    list such as 8, 16, 24, 32), else ``min_a`` to ``max_a`` in steps of ``step_a`` (6-32 A
    in 1 A steps). The charger's power at a current: ``voltage_v`` x current (x sqrt 3 on
    three phases, / sqrt 3 on one phase to neutral), at unity power factor."""

    min_a: float = 6.0
    max_a: float = 32.0
    step_a: float = 1.0
    values_a: tuple[float, ...] = ()

    def currents_a(self) -> tuple[float, ...]:
        if self.values_a:
            return tuple(sorted(float(x) for x in self.values_a if x > 0))
        count = math.floor((self.max_a - self.min_a) / self.step_a + 1e-9) + 1
        return tuple(self.min_a + i * self.step_a for i in range(max(count, 0)))


PHASES = ("three_phase", "A", "B", "C", "AB", "BC", "CA")


def kw_per_a(phase: str, voltage_v: float) -> float:
    """Power (kW) per ampere of line current at unity power factor on a connection ``phase``
    of a supply of line-to-line voltage ``voltage_v`` (V)."""
    if phase == "three_phase":
        return math.sqrt(3.0) * voltage_v / 1000.0
    if phase in ("A", "B", "C"):
        return voltage_v / math.sqrt(3.0) / 1000.0
    return voltage_v / 1000.0


@dataclass(frozen=True)
class LimitGroup:
    """A named limit on what a set of assets draws together: a circuit, a panel, a pod of
    chargers on one sub-circuit, a feeder. Members are ``assets``, every asset on ``buses``,
    and the members of the child ``groups`` (nested groups). ``import_max_kw`` and
    ``export_max_kw`` cap the members' summed power (load convention); ``current_max_a`` caps
    it as a current on three phases at ``voltage_v`` (line-to-line) and ``power_factor``;
    ``phase_current_max_a`` caps each phase's current (the phasor sum of the members' line
    currents, by their ``phase`` connection, at ``voltage_v``). ``element`` names the network
    element (a pandapower transformer or line) the group protects, for reports."""

    name: str
    assets: tuple[str, ...] = ()
    buses: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    import_max_kw: float | None = None
    export_max_kw: float | None = None
    current_max_a: float | None = None
    phase_current_max_a: float | None = None
    # Line-to-line voltage of the group's supply, for its current limits.
    voltage_v: float | None = None
    power_factor: float = 1.0
    element: str | None = None

    def import_limit_kw(self) -> float:
        """The tighter of ``import_max_kw`` and the current limit as kW (inf when none)."""
        return min(self._kw(self.import_max_kw), self._current_kw())

    def export_limit_kw(self) -> float:
        return min(self._kw(self.export_max_kw), self._current_kw())

    def _current_kw(self) -> float:
        if self.current_max_a is None or self.voltage_v is None:
            return math.inf
        return kw_per_a("three_phase", self.voltage_v) * self.current_max_a * self.power_factor

    @staticmethod
    def _kw(x: float | None) -> float:
        return math.inf if x is None else float(x)
