"""Solve in a separate process: the API's event loop keeps the GIL while a solve runs, and a
solve that hangs is killed at its time limit instead of stalling the service.

:class:`ProcessController` is a :class:`controllers.problem.Controller` whose ``dispatch``
sends the problem to a long-lived worker process (started with ``spawn``, so no thread of
the service is forked) that holds the real controller (its compiled cvxpy problem survives
between cycles). A worker that dies or overruns ``timeout_s`` is replaced and the call
raises :class:`SolveTimeoutError` / :class:`SolverWorkerError`; :func:`vpp.cycle.run_cycle`
then falls back to the last plan or the rule-based controller.
"""

from __future__ import annotations

import importlib
import logging
import multiprocessing as mp
import threading

from controllers.problem import DispatchProblem, DispatchResult

log = logging.getLogger(__name__)


class SolveTimeoutError(TimeoutError):
    """The worker did not answer within the time limit; it was killed."""


class SolverWorkerError(RuntimeError):
    """The worker process ended while solving."""


def _serve(conn, factory: str) -> None:  # runs in the worker process
    module, _, name = factory.partition(":")
    controller = getattr(importlib.import_module(module), name)()
    while True:
        try:
            problem = conn.recv()
        except EOFError:
            return
        if problem is None:
            return
        try:
            conn.send(("ok", controller.dispatch(problem)))
        except Exception as exc:  # sent back and raised in the service
            conn.send(("error", f"{type(exc).__name__}: {exc}"))


class ProcessController:
    """``factory``: ``"module:Class"`` of the controller to run in the worker."""

    def __init__(
        self, factory: str = "controllers.mpc:MpcController", name: str = "mpc", timeout_s=None
    ):
        self.factory, self.name, self.timeout_s = factory, name, timeout_s
        self._ctx = mp.get_context("spawn")
        self._proc = None
        self._conn = None
        self._lock = threading.Lock()

    def _start(self) -> None:
        parent, child = self._ctx.Pipe()
        self._proc = self._ctx.Process(
            target=_serve, args=(child, self.factory), name="vpp-solver", daemon=True
        )
        self._proc.start()
        child.close()
        self._conn = parent

    def dispatch(self, problem: DispatchProblem) -> DispatchResult:
        limit = self.timeout_s if self.timeout_s is not None else problem.time_limit_s + 30.0
        with self._lock:
            if self._proc is None or not self._proc.is_alive():
                self._start()
            self._conn.send(problem)
            if not self._conn.poll(limit):
                self._kill()
                raise SolveTimeoutError(
                    f"{self.name}: no answer within {limit:.1f} s; worker killed"
                )
            try:
                kind, payload = self._conn.recv()
            except (EOFError, OSError):
                self._kill()
                raise SolverWorkerError(f"{self.name}: the solver process died") from None
        if kind == "error":
            raise RuntimeError(f"{self.name} (solver process): {payload}")
        return payload

    def _kill(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc.join(5)
        self._proc = self._conn = None

    def close(self) -> None:
        with self._lock:
            if self._proc is not None and self._proc.is_alive():
                try:
                    self._conn.send(None)
                    self._proc.join(5)
                except OSError:
                    pass
            self._kill()
