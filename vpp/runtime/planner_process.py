"""Compute in a separate process: the API's event loop keeps the GIL while a cycle computes,
and a computation that hangs is killed at its time limit instead of stalling the service.

A :class:`Worker` is one long-lived process (started with ``spawn``, so no thread of the
service is forked) that builds a handler once and answers requests one at a time; one that
dies or overruns its limit is killed, replaced on the next request, and the call raises
:class:`SolveTimeoutError` / :class:`SolverWorkerError`.

* :class:`ProcessPlanner` (what ``vpp run`` uses): the whole computation of a cycle
  (forecast, prepare, dispatch, AC validation, the encoded plan), a
  :class:`vpp.runtime.planner.InlinePlanner` in the worker. The service only reads the plant, sends
  the state, stores and publishes; when the worker fails it falls back in its own process
  (:func:`vpp.plan.cycle.fallback_cycle`: the last plan shifted, then the rule-based controller).
* :class:`ProcessController`: only the solve (a :class:`controllers.problem.Controller`);
  :func:`vpp.plan.cycle.run_cycle` falls back when it raises.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing as mp
import os
import signal
import threading
from dataclasses import replace
from typing import Any

from controllers.problem import DispatchProblem, DispatchResult
from vpp.runtime.planner import PlannerSpec, PlanOutcome, PlanRequest, build_planner, load

log = logging.getLogger(__name__)

WORKER_NICE = 5  # the worker's priority below the service's
START_TIMEOUT_S = 300.0  # spawn, imports, the handler's set-up (a loaded machine is slow)


class SolveTimeoutError(TimeoutError):
    """The worker did not answer within the time limit; it was killed."""


class SolverWorkerError(RuntimeError):
    """The worker process ended (or could not start) while working."""


def _serve(conn, factory: str, args: tuple, method: str) -> None:  # the worker process
    # The service decides when the worker ends (a message or a kill): a Ctrl-C sent to the
    # process group must not end it in the middle of a request.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # The solve may take every core (HiGHS's parallel dual simplex): the API process, which
    # answers device gateways, goes first when both want the CPU.
    with contextlib.suppress(OSError):  # not permitted: run at the service's priority
        os.nice(WORKER_NICE)
    try:
        handler = getattr(load(factory)(*args), method)
    except Exception as exc:
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
        return
    conn.send(("ready", None))
    while True:
        try:
            request = conn.recv()
        except EOFError:
            return
        if request is None:
            return
        try:
            conn.send(("ok", handler(request)))
        except Exception as exc:  # sent back and raised in the service
            log.exception("worker: request failed")
            conn.send(("error", f"{type(exc).__name__}: {exc}"))


class Worker:
    """A process that builds ``load(factory)(*args)`` once and answers each request with
    its ``method``. Thread-safe: one request at a time."""

    def __init__(
        self,
        factory: str,
        args: tuple = (),
        method: str = "__call__",
        name: str = "vpp-worker",
        start_timeout_s: float = START_TIMEOUT_S,
    ):
        self.factory, self.args, self.method, self.name = factory, args, method, name
        self.start_timeout_s = start_timeout_s
        self._ctx = mp.get_context("spawn")
        self._proc = None
        self._conn = None
        self._ready = False
        self._lock = threading.Lock()
        self.starts = 0  # processes started so far (a restart after a kill counts)

    def start(self) -> None:
        """Start the process now (it sets itself up while the caller goes on)."""
        with self._lock:
            if self._proc is None or not self._proc.is_alive():
                self._spawn()

    @property
    def alive(self) -> bool:
        """True while the process runs (False before the first start and after a kill,
        until the next request starts a new one)."""
        proc = self._proc
        return proc is not None and proc.is_alive()

    def _spawn(self) -> None:
        self._kill()
        parent, child = self._ctx.Pipe()
        self._proc = self._ctx.Process(
            target=_serve,
            args=(child, self.factory, self.args, self.method),
            name=self.name,
            daemon=True,
        )
        self._proc.start()
        child.close()
        self._conn, self._ready = parent, False
        self.starts += 1

    def _await_ready(self) -> None:
        if self._ready:
            return
        if not self._conn.poll(self.start_timeout_s):
            self._kill()
            raise SolveTimeoutError(
                f"{self.name}: not ready within {self.start_timeout_s:.0f} s; killed"
            )
        kind, payload = self._receive()
        if kind != "ready":
            self._kill()
            raise SolverWorkerError(f"{self.name}: could not start: {payload}")
        self._ready = True

    def call(self, request: Any, timeout_s: float) -> Any:
        """The handler's answer to ``request``; raises when the process overruns
        ``timeout_s`` (it is killed), dies, or the handler raised (``RuntimeError``)."""
        with self._lock:
            if self._proc is None or not self._proc.is_alive():
                self._spawn()
            self._await_ready()
            try:
                self._conn.send(request)
            except OSError:
                self._kill()
                raise SolverWorkerError(f"{self.name}: the worker process died") from None
            if not self._conn.poll(timeout_s):
                self._kill()
                raise SolveTimeoutError(
                    f"{self.name}: no answer within {timeout_s:.1f} s; worker killed"
                )
            kind, payload = self._receive()
        if kind == "error":
            raise RuntimeError(f"{self.name} (worker process): {payload}")
        return payload

    def _receive(self) -> tuple[str, Any]:
        try:
            return self._conn.recv()
        except (EOFError, OSError):
            self._kill()
            raise SolverWorkerError(f"{self.name}: the worker process died") from None

    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def _kill(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc.join(5)
        if self._conn is not None:
            self._conn.close()
        self._proc = self._conn = None
        self._ready = False

    def close(self) -> None:
        with self._lock:
            if self._proc is not None and self._proc.is_alive():
                try:
                    self._conn.send(None)
                    self._proc.join(5)
                except OSError:
                    pass
            self._kill()


class ProcessController:
    """A controller solving in a worker process. ``factory``: ``"module:Class"`` of the
    controller to run there (its compiled cvxpy problem survives between solves)."""

    def __init__(
        self, factory: str = "controllers.mpc:MpcController", name: str = "mpc", timeout_s=None
    ):
        self.factory, self.name, self.timeout_s = factory, name, timeout_s
        self._worker = Worker(factory, (), "dispatch", name="vpp-solver")

    def dispatch(self, problem: DispatchProblem) -> DispatchResult:
        limit = self.timeout_s if self.timeout_s is not None else problem.time_limit_s + 30.0
        try:
            return self._worker.call(problem, limit)
        except SolveTimeoutError as exc:
            raise SolveTimeoutError(f"{self.name}: {exc}") from None

    def close(self) -> None:
        self._worker.close()


class _PlannerHandler:
    """The worker's side of :class:`ProcessPlanner`: the planner, and the last plan it
    returned (so the service need not send back what the worker has)."""

    def __init__(self, spec: PlannerSpec):
        self.planner = build_planner(spec)
        self.last: DispatchResult | None = None

    def plan(self, message: tuple[PlanRequest, bool]) -> PlanOutcome | None:
        """``message``: the request, and whether its last plan is the one this worker
        returned last (then it is not sent). None: a fresh worker asks for it."""
        req, last_is_mine = message
        if last_is_mine:
            if self.last is None:
                return None
            req = replace(req, last_plan=self.last)
        out = self.planner.plan(req)
        self.last = out.report.result
        return out


class ProcessPlanner:
    """A :class:`vpp.runtime.planner.Planner` whose work runs in a long-lived worker process built
    from ``spec``. ``timeout_s`` bounds one cycle's computation (default: the spec's)."""

    def __init__(self, spec: PlannerSpec, timeout_s: float | None = None):
        self.spec = spec
        self.timeout_s = timeout_s
        self.worker = Worker(
            "vpp.runtime.planner_process:_PlannerHandler", (spec,), "plan", name="vpp-planner"
        )
        self._held: DispatchResult | None = None  # the worker's last plan, as received here

    def start(self) -> None:
        """Start the worker now, so the first cycle does not wait for its set-up."""
        self.worker.start()

    @property
    def alive(self) -> bool:
        """True while the worker process runs (``/health`` reads it)."""
        return self.worker.alive

    def plan(self, req: PlanRequest) -> PlanOutcome:
        limit = self.timeout_s if self.timeout_s is not None else self.spec.time_limit_s()
        held, self._held = self._held, None
        out = None
        if req.last_plan is not None and req.last_plan is held:
            out = self.worker.call((replace(req, last_plan=None), True), limit)
        if out is None:
            out = self.worker.call((req, False), limit)
        self._held = out.report.result
        return out

    def close(self) -> None:
        self.worker.close()
