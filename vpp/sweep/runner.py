"""Running a sweep on Dask: one task per case, resumable, nothing half-written.

- The client: a ``LocalCluster`` on this machine (``workers`` processes of one thread each,
  BLAS and OpenMP on one thread: the nannies' environment and threadpoolctl in the task), or
  an existing cluster by its scheduler's address (``tcp://HOST:PORT``).
- One task per case (:func:`vpp.sweep.cases.run_case`), keyed by the case's hash. A case whose
  result file says ``ok`` is not run again (a rerun runs only what is missing or failed).
- A case that fails is recorded with its error and traceback; the others go on.
- A worker lost mid-case: the scheduler runs the case again on another worker, up to
  ``distributed.scheduler.allowed-failures`` lost workers per case (:data:`ALLOWED_FAILURES`
  on the ``LocalCluster``; an existing scheduler's own setting, 3 by default); past that the
  case is recorded failed (``KilledWorker``). An exception escaping the task is retried
  :data:`RETRIES` time(s).
- Each result is written to ``OUT/cases/<key>.json`` through a temporary file and an atomic
  rename, by the client (workers need not share its disk); the table and the summary are
  rebuilt from those files at the end (:mod:`vpp.sweep.results`, :mod:`vpp.sweep.summary`).
- Progress on stderr: cases done, failed and left, elapsed time and an ETA.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from vpp.sweep.cases import run_case
from vpp.sweep.spec import Resolved, Sweep, code_version

ALLOWED_FAILURES = 3  # lost workers a case survives on the LocalCluster (Dask's default)
RETRIES = 1  # re-runs of a task that raised outside the case's own code
THREAD_ENV = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "NUMEXPR_NUM_THREADS": "1",
}


@dataclass
class SweepRun:
    """What one invocation did: cases run now, skipped as done before, failed, in all."""

    total: int
    ran: int
    skipped: int
    failed: int
    wall_s: float
    startup_s: float
    docs: list[dict]


# ------------------------------------------------------------------------------------------
# Per-case files
# ------------------------------------------------------------------------------------------
def case_dir(out: Path) -> Path:
    return Path(out) / "cases"


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder and a rename:
    a reader sees the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o644)  # as a plain open would (mkstemp makes it 0600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def read_case(out: Path, key: str) -> dict | None:
    """The result document of case ``key`` (None when missing or unreadable)."""
    try:
        return json.loads((case_dir(out) / f"{key}.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def columns(r: Resolved) -> dict[str, Any]:
    """The case's axis values as the table shows them, resolved to what ran (the park's own
    tariff, risk and noise where the sweep left them)."""
    from vpp.sim.simulated_park import SimOptions

    c = r.case
    tariff = r.site.tariff.source_file
    return {
        "controller": c.controller,
        "seed": c.seed,
        "start": r.start.date().isoformat(),
        "battery_scale": c.battery_scale,
        "pv_scale": c.pv_scale,
        "tariff": Path(tariff).stem if tariff else r.site.tariff.name,
        "dr": Path(c.dr).stem if c.dr else "none",
        "forecast": r.forecast,
        "load_noise_frac": (r.options or SimOptions()).load_noise_frac,
        "risk_frac": r.site.dispatch.risk_frac,
        "days": r.days,
    }


def _document(r: Resolved, result: dict) -> dict:
    doc = {
        "key": r.key,
        "reference_key": r.reference_key,
        "code_version": code_version(),
        "axes": columns(r),
        "case": dataclasses.asdict(r.case),
    }
    doc.update(result)
    doc["key"] = r.key
    return doc


# ------------------------------------------------------------------------------------------
# The Dask client
# ------------------------------------------------------------------------------------------
def _warm() -> int:
    """Import the simulation once per worker before the first case (about 7 s here): the
    start-up's cost, not a case's."""
    import vpp.sim.closed_loop
    import vpp.sweep.cases  # noqa: F401

    return os.getpid()


@contextlib.contextmanager
def dask_client(workers: int = 2, scheduler: str | None = None) -> Iterator[Any]:
    """A ``distributed.Client``: on an existing scheduler (``tcp://HOST:PORT``), else on a
    ``LocalCluster`` of ``workers`` processes with one thread each, closed on exit."""
    import dask
    from distributed import Client, LocalCluster

    if scheduler is not None:
        with Client(scheduler, timeout="30s") as client:
            yield client
        return
    with dask.config.set({"distributed.scheduler.allowed-failures": ALLOWED_FAILURES}):
        cluster = LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            scheduler_kwargs={"dashboard": False},
            silence_logs=logging.WARNING,
            env=THREAD_ENV,
        )
        try:
            with Client(cluster) as client:
                yield client
        finally:
            # A worker's interpreter takes longer to exit than the nanny's 4 s (the solver,
            # pandapower, pandas): it is then killed, after every result was written. Not
            # worth a warning to the user.
            nanny = logging.getLogger("distributed.nanny")
            level = nanny.level
            nanny.setLevel(logging.ERROR)
            try:
                cluster.close()
            finally:
                nanny.setLevel(level)


# ------------------------------------------------------------------------------------------
# Running
# ------------------------------------------------------------------------------------------
def _clock(s: float) -> str:
    s = max(round(s), 0)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


class Progress:
    """``sweep: 5/16 done (2 skipped), 1 failed, 11 left, elapsed 0:00:12, ETA 0:00:26``."""

    def __init__(self, total: int, skipped: int, stream: TextIO | None):
        self.total, self.skipped, self.stream = total, skipped, stream
        self.done = self.failed = 0
        self.t0 = time.perf_counter()

    def update(self, failed: bool) -> None:
        self.done += 1
        self.failed += int(failed)
        self.show()

    def show(self) -> None:
        if self.stream is None:
            return
        el = time.perf_counter() - self.t0
        todo = self.total - self.skipped
        left = todo - self.done
        eta = el / self.done * left if self.done else float("nan")
        eta_s = _clock(eta) if self.done else "-"
        print(
            f"sweep: {self.skipped + self.done}/{self.total} done ({self.skipped} skipped), "
            f"{self.failed} failed, {left} left, elapsed {_clock(el)}, ETA {eta_s}",
            file=self.stream,
            flush=True,
        )


def pending(sweep: Sweep, out: Path) -> list[Resolved]:
    """The cases without an ``ok`` result file (missing, failed or of older code)."""
    out_cases = []
    for r in sweep.cases:
        doc = read_case(out, r.key)
        if doc is None or doc.get("status") != "ok":
            out_cases.append(r)
    return out_cases


def run_sweep(
    sweep: Sweep,
    out: Path,
    client: Any = None,
    workers: int = 2,
    scheduler: str | None = None,
    stream: TextIO | None = sys.stderr,
    on_submitted: Callable[[Any, list], None] | None = None,
) -> SweepRun:
    """Run every case of ``sweep`` not done yet and write its result file in ``out/cases``.

    ``client``: a ``distributed.Client`` to use (else one is made: ``scheduler`` or a
    ``LocalCluster`` of ``workers``). ``on_submitted(client, futures)`` is called once the
    tasks are submitted (tests kill a worker from there). Returns the counts and the
    documents written now."""
    t0 = time.perf_counter()
    out = Path(out)
    todo = pending(sweep, out)
    skipped = len(sweep) - len(todo)
    prog = Progress(len(sweep), skipped, stream)
    if not todo:
        prog.show()
        return SweepRun(len(sweep), 0, skipped, 0, time.perf_counter() - t0, 0.0, [])
    with contextlib.ExitStack() as stack:
        if client is None:
            client = stack.enter_context(dask_client(workers, scheduler))
        client.run(_warm)
        startup_s = time.perf_counter() - t0
        prog.t0 = time.perf_counter()
        prog.show()
        docs = _run_on(client, todo, out, prog, on_submitted)
    failed = sum(1 for d in docs if d["status"] != "ok")
    return SweepRun(
        len(sweep), len(docs), skipped, failed, time.perf_counter() - t0, startup_s, docs
    )


def _run_on(client, todo: list[Resolved], out: Path, prog: Progress, on_submitted) -> list:
    from distributed import as_completed

    token = uuid.uuid4().hex[:8]
    by_key = {}
    futures = []
    for r in todo:
        f = client.submit(run_case, r, key=f"vpp-case-{r.key}-{token}", retries=RETRIES)
        by_key[f.key] = r
        futures.append(f)
    if on_submitted is not None:
        on_submitted(client, futures)
    docs = []
    for fut in as_completed(futures):
        r = by_key[fut.key]
        try:
            result = fut.result()
        except Exception as exc:  # the worker died too often, or the task could not run
            result = {
                "status": "failed",
                "error": f"{type(exc).__name__}: {exc}",
                "traceback": "",
                "compute_s": None,
            }
        doc = _document(r, result)
        write_atomic(case_dir(out) / f"{r.key}.json", json.dumps(doc, indent=1))
        docs.append(doc)
        prog.update(doc["status"] != "ok")
        fut.release()
    return docs


def run_serial(sweep: Sweep) -> list[dict]:
    """Every case in this process, one after another, nothing written (the reference the
    Dask path is compared with, in tests and ``bench/sweep.py``)."""
    return [_document(r, run_case(r)) for r in sweep.cases]
