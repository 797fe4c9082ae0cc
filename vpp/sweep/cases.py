"""One case of a sweep, as a worker runs it: :func:`vpp.sim.closed_loop.simulate` on the
case's park variant, and its realised KPIs as plain numbers (the names of ``kpis.json``).

:func:`run_case` never raises for a case's own failure: the error and its traceback are the
case's result (``status: failed``), so that one bad case does not stop the others and Dask
retries only what it should (a worker lost mid-case). BLAS and OpenMP run on one thread per
worker (threadpoolctl): workers are processes with one thread each, the parallelism is theirs.
"""

from __future__ import annotations

import functools
import math
import os
import resource
import socket
import sys
import time
import traceback
from typing import Any

from vpp.accounting.kpis import KPI_NAMES
from vpp.sweep.spec import Resolved

# Figures that measure the machine, not the park: left out of equality checks.
TIMING_KPIS = ("cycle_time_p50_ms", "cycle_time_p95_ms")


@functools.cache
def _threadpools():
    """Inspecting the loaded libraries costs about 0.1 s: once per worker process."""
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def _plain(v: Any) -> Any:
    if v is None or isinstance(v, bool | str):
        return v
    if isinstance(v, int):
        return int(v)
    try:
        f = float(v)
    except (TypeError, ValueError):
        return str(v)
    return f if math.isfinite(f) else None


def rss_peak_mb() -> float:
    """This process's peak resident set (MB): ``VmHWM`` on Linux (``ru_maxrss`` would keep
    the peak of the process a spawned worker was forked from), else ``ru_maxrss``."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return float(line.split()[1]) / 1024.0
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024.0 * 1024.0) if sys.platform == "darwin" else peak / 1024.0


def run_case(case: Resolved) -> dict:
    """Simulate ``case`` and return its result document (JSON-ready).

    ``status`` is ``ok`` (with ``kpis``) or ``failed`` (with ``error`` and ``traceback``);
    ``compute_s`` is the case's own wall time in the worker, ``rss_peak_mb`` the worker
    process's peak resident memory after it, ``worker`` its host and process id."""
    from vpp.sim.closed_loop import simulate

    t0 = time.perf_counter()
    started = time.time()
    doc: dict[str, Any] = {"key": case.key, "worker": f"{socket.gethostname()}:{os.getpid()}"}
    try:
        with _threadpools().limit(limits=1):
            r = simulate(
                case.site,
                case.start,
                case.days,
                case.case.controller,
                forecast=case.forecast,
                seed=case.case.seed,
                dr_events=case.events,
                grid=case.grid,
                options=case.options,
                history_days=case.history_days,
            )
        doc["status"] = "ok"
        doc["kpis"] = {k: _plain(r.kpis.get(k)) for k in KPI_NAMES}
    except Exception as exc:  # the case's failure is its result, not the sweep's
        doc["status"] = "failed"
        doc["error"] = f"{type(exc).__name__}: {exc}"
        doc["traceback"] = traceback.format_exc()
    doc["started_unix_s"] = started
    doc["compute_s"] = time.perf_counter() - t0
    doc["rss_peak_mb"] = rss_peak_mb()
    return doc
