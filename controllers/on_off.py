"""On/off semantics of shiftable loads, checked on a power schedule.

A shiftable load with a minimum power or a minimum run is a MILP in the dispatch (an on/off
state per step). The same rules, read off the power alone:

* each step is off (``p <= tol``) or on (``p >= p_min_kw - tol``);
* a run that starts inside the horizon lasts ``min_run_steps`` steps, or until the horizon
  ends if that comes first;
* a load already running before the horizon (``running_steps > 0``) stays on until it has run
  ``min_run_steps`` in all, where its window allows.

:func:`violations` is used twice: by the invariant checks on every dispatch, and by the MPC to
accept the LP relaxation's schedule when it already obeys the rules (it is then optimal for
the MILP too: the relaxation's optimum is a lower bound and the schedule is feasible).
"""

from __future__ import annotations

import numpy as np

from controllers.problem import ShiftableInput

# What a result's messages say when the fallback solver relaxed the on/off states.
RELAXED_MESSAGE = "fallback solves the continuous relaxation of the on/off states"
# What they say when the LP relaxation's schedule kept every rule (so the MILP was not run).
RELAXATION_EXACT_MESSAGE = "LP relaxation keeps every on/off rule: MILP optimum without branching"
REPAIRED_MESSAGE = "on/off states fixed to the LP relaxation's rounded schedule"


def has_on_off(sh: ShiftableInput) -> bool:
    return sh.spec.p_min_kw > 0 or sh.spec.min_run_steps > 1


def violations(sh: ShiftableInput, p_kw: np.ndarray, tol_kw: float = 1e-3) -> list[str]:
    """What breaks the on/off rules in ``p_kw`` (empty when none)."""
    spec = sh.spec
    n = len(p_kw)
    on = np.asarray(p_kw) > tol_kw
    out: list[str] = []
    low = on & (np.asarray(p_kw) < spec.p_min_kw - tol_kw)
    if low.any():
        k = int(np.argmax(low))
        out.append(
            f"shiftable {spec.name}: {p_kw[k]:.3f} kW at step {k}, between 0 and its minimum "
            f"{spec.p_min_kw} kW"
        )
    m = spec.min_run_steps
    if m <= 1:
        return out
    k = 0
    while k < n:
        if not on[k]:
            k += 1
            continue
        end = _run_end(on, k)
        if _too_short(sh, k, end, n):
            out.append(
                f"shiftable {spec.name}: runs {end - k} steps from step {k}, minimum run {m} steps"
            )
        k = end
    if sh.running_steps > 0:
        in_window = _window_mask(sh, n)
        left = max(0, m - sh.running_steps)
        stop = np.flatnonzero(in_window[:left] & ~on[:left])
        if stop.size:
            out.append(
                f"shiftable {spec.name}: stops at step {int(stop[0])} after running "
                f"{sh.running_steps} steps before the horizon, minimum run {m} steps"
            )
    return out


def _run_end(on: np.ndarray, k: int) -> int:
    """End (exclusive) of the run of on-steps that starts at ``k``."""
    end = k
    while end < len(on) and on[end]:
        end += 1
    return end


def _too_short(sh: ShiftableInput, k: int, end: int, n: int) -> bool:
    """A run ``[k, end)`` shorter than the minimum run (the horizon's end may cut it; a run
    that continues one from before the horizon is judged by its remaining run instead)."""
    continued = k == 0 and sh.running_steps > 0
    return not continued and end - k < min(sh.spec.min_run_steps, n - k)


def _window_mask(sh: ShiftableInput, n: int) -> np.ndarray:
    mask = np.zeros(n, dtype=bool)
    for w in sh.windows:
        mask[max(w.start_k, 0) : min(w.end_k, n)] = True
    return mask


def round_pattern(
    sh: ShiftableInput, p_kw: np.ndarray, dt_h: float, tol_kw: float = 1e-3
) -> np.ndarray:
    """A 0/1 on-pattern near ``p_kw`` (an LP relaxation's schedule) that keeps the run rules:
    on where ``p_kw`` runs, inside the window; a run too short is lengthened forward (then
    backward) inside the window, or dropped when it cannot be; a load running before the
    horizon stays on for its remaining minimum run. A window whose pattern would force more
    energy than is left (steps x minimum power) gets one contiguous run instead, as long as
    the energy needs, around the relaxation's centre of consumption."""
    n = len(p_kw)
    p = np.asarray(p_kw, dtype=float)
    on = _runs(sh, p, n, tol_kw)
    for w in sh.windows:
        a, b = max(w.start_k, 0), min(w.end_k, n)
        if b <= a:
            continue
        if on[a:b].sum() * sh.spec.p_min_kw * dt_h > w.e_kwh + 1e-6:
            on[a:b] = _block(sh, p, a, b, w.e_kwh, n, dt_h)
    return on


def _runs(sh: ShiftableInput, p: np.ndarray, n: int, tol_kw: float) -> np.ndarray:
    m = max(1, sh.spec.min_run_steps)
    window = _window_mask(sh, n)
    on = (p > tol_kw) & window
    if sh.running_steps > 0:
        on[: _head(sh, window, n)] = True
    k = 0
    while k < n:
        if not on[k]:
            k += 1
            continue
        end = _run_end(on, k)
        need = min(m, n - k)
        if _too_short(sh, k, end, n):
            a, b = k, end
            while b - a < need and b < n and window[b]:
                b += 1
            while b - a < min(m, n - a) and a > 0 and window[a - 1] and not on[a - 1]:
                a -= 1
            if b - a >= min(m, n - a):
                on[a:b] = True
                end = b
            else:
                on[k:end] = False
        k = end
    return on


def _head(sh: ShiftableInput, window: np.ndarray, n: int) -> int:
    """Steps from 0 a load running before the horizon must stay on (its remaining run)."""
    if sh.running_steps <= 0:
        return 0
    left = max(0, sh.spec.min_run_steps - sh.running_steps)
    head = 0
    while head < min(left, n) and window[head]:
        head += 1
    return head


def _block(
    sh: ShiftableInput, p: np.ndarray, a: int, b: int, e_kwh: float, n: int, dt_h: float
) -> np.ndarray:
    """One run inside ``[a, b)`` as long as ``e_kwh`` needs at full power (at least the
    minimum run, unless the horizon cuts it), placed around the consumption's centre."""
    spec = sh.spec
    out = np.zeros(b - a, dtype=bool)
    steps = int(np.ceil(e_kwh / (spec.p_max_kw * dt_h) - 1e-9)) if e_kwh > 1e-9 else 0
    continued = a == 0 and sh.running_steps > 0
    head = _head(sh, _window_mask(sh, n), n) if continued else 0
    if steps == 0 and head == 0:
        return out
    if continued:
        out[: max(steps, head)] = True
        return out
    length = max(steps, spec.min_run_steps)
    if length * spec.p_min_kw * dt_h > e_kwh + 1e-6:
        # Only a run cut short by the horizon's end can be this small.
        if b < n:
            return out
        length = max(steps, 1)
    length = min(length, b - a)
    w = p[a:b]
    centre = float((w * np.arange(b - a)).sum() / w.sum()) if w.sum() > 0 else 0.0
    first = round(centre - length / 2)
    first = min(max(first, 0), b - a - length)
    if b == n and first + length < b - a and length < spec.min_run_steps:
        first = b - a - length  # a short run must end with the horizon
    out[first : first + length] = True
    return out
