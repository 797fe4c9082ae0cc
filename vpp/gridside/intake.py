"""The service's one DR-event path, as the grid-side adapters use it.

A VEN or the IEC 104 outstation hands over a DR event as the same JSON fields the REST API
takes (``POST /api/v1/dr-events``); :class:`DrIntake` runs the same checks
(:func:`vpp.park.dr_checks.event_problems` around the service's clock), the same decision on
receipt (pre-agreed: confirmed; an invitation: the park's ``dr_policy``,
:func:`vpp.accounting.dr_contract.auto_confirm`), stores it in the same table with its history
(:mod:`vpp.store.repo`), and asks the service for the same immediate re-solve. Stored there,
the event is planned, advanced (confirmed -> active -> completed, declined past its deadline)
and settled on the park meter exactly as a REST one (:mod:`vpp.runtime.dr_lifecycle`).

The adapters sit in the runtime's layer and may not import :mod:`vpp.runtime`: the service is
reached through :class:`ServicePort`, which :class:`vpp.runtime.service.Runtime` satisfies as
it is (``vpp run`` passes the runtime in).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy.exc import IntegrityError

from vpp.accounting import dr_contract
from vpp.park import dr_checks
from vpp.park.model import DrContractType, DrStatus, Site
from vpp.store import repo
from vpp.store.codec import dr_from_json

log = logging.getLogger(__name__)

OPEN = (DrStatus.ANNOUNCED.value, DrStatus.CONFIRMED.value, DrStatus.ACTIVE.value)
IN_FORCE = (DrStatus.CONFIRMED.value, DrStatus.ACTIVE.value)


class ServicePort(Protocol):
    """What the adapters need of the running service (:class:`~vpp.runtime.service.Runtime`).

    ``current`` is the plan in force (``version``, ``at``, ``plan``, ``problem``) or None;
    ``readings()`` the newest reading per asset (``ts``, ``p_kw``, ``e_kwh``)."""

    site: Site
    engine: Any
    clock: Any
    settings: Any
    current: Any

    def request_resolve(self, reason: str) -> int | None: ...

    def wait_resolved(self, ticket: int | None, timeout_s: float) -> bool: ...

    def readings(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Receipt:
    """What became of an event handed over: ``status`` as stored (None: refused, not
    stored), why (``note``, or every ``problems`` line of the checks), and the plan version
    in force before the change (``plan_before``) with the re-solve's ticket."""

    event_id: str
    status: str | None
    note: str = ""
    problems: tuple[str, ...] = ()
    plan_before: int | None = None
    ticket: int | None = None

    @property
    def stored(self) -> bool:
        return self.status is not None

    @property
    def in_force(self) -> bool:
        return self.status in IN_FORCE


@dataclass
class DrIntake:
    """Create, update and cancel DR events on behalf of one adapter (``actor``, as the
    event's history names it, e.g. ``openadr2:VTN-1``).

    Parameters
    ----------
    port : the service.
    actor : who the stored history says made each change.
    on_change : called after every stored change (``event_id``, status) - the adapters'
        own bookkeeping (latency probes in ``bench/gridside.py``).
    """

    port: ServicePort
    actor: str
    on_change: Callable[[str, str], None] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    # ------------------------------------------------------------------------------------
    def problems(self, fields: dict[str, Any]) -> list[str]:
        """The park's checks of an event's fields (as ``check_event`` in the API runs
        them): each problem as ``field: message, got value``; empty when it passes."""
        try:
            event = dr_from_json({**fields, "status": DrStatus.ANNOUNCED.value})
        except (KeyError, TypeError, ValueError) as exc:
            return [f"cannot be read: {type(exc).__name__}: {exc}"]
        site, settings = self.port.site, self.port.settings
        found = dr_checks.event_problems(
            event, dr_checks.DrPark.of(site), settings.dr_bounds(), self.port.clock.now()
        )
        return [str(p) for p in found]

    def submit(
        self, fields: dict[str, Any], decline: str | None = None, resolve: bool = True
    ) -> Receipt:
        """Store a new event (or update it when it exists and is open).

        Parameters
        ----------
        fields : the REST body's fields (``event_id``, ``direction``, ``windows`` with ISO
            times, ``requested_kw`` ...).
        decline : when set, the adapter has opted out for this reason (the park cannot
            deliver): the event is stored as declined, so the record shows the call and why.
        resolve : ask the service for a re-solve (the API's immediate re-solve).
        """
        fields = dict(fields)
        fields.setdefault("announce_time", None)
        fields["announce_time"] = fields["announce_time"] or self.port.clock.now().isoformat()
        eid = fields["event_id"]
        problems = self.problems(fields)
        if problems:
            log.warning("%s: DR event %s refused: %s", self.actor, eid, "; ".join(problems))
            return Receipt(eid, None, "refused by the park's checks", tuple(problems))
        with self._lock:
            with self.port.engine.connect() as conn:
                row = repo.get_dr(conn, eid)
            if row is not None:
                return self.update(eid, fields, decline=decline, resolve=resolve)
            status, note = self._on_receipt(fields, decline)
            before = self._version()
            try:
                with self.port.engine.begin() as conn:
                    repo.insert_dr(conn, eid, status.value, fields, self.actor)
                    if status is not DrStatus.ANNOUNCED:
                        repo.log_dr(conn, eid, status.value, self.actor, note)
            except IntegrityError:  # created meanwhile by another path
                return self.update(eid, fields, decline=decline, resolve=resolve)
        log.info("%s: DR event %s stored %s (%s)", self.actor, eid, status.value, note)
        return self._after(eid, status.value, note, before, resolve)

    def update(
        self,
        event_id: str,
        fields: dict[str, Any],
        decline: str | None = None,
        resolve: bool = True,
    ) -> Receipt:
        """A modification from the utility: the new fields replace the stored ones (the
        checks run again); a confirmed event stays confirmed unless ``decline`` is given,
        an announced one is decided again on receipt."""
        problems = self.problems(fields)
        if problems:
            return Receipt(event_id, None, "refused by the park's checks", tuple(problems))
        before = self._version()
        with self.port.engine.begin() as conn:
            row = repo.get_dr(conn, event_id)
            if row is None:
                return Receipt(event_id, None, "no such event")
            if row["status"] not in OPEN:
                return Receipt(event_id, row["status"], f"closed ({row['status']}): not changed")
            status = DrStatus(row["status"])
            note = "updated by the utility"
            if decline is not None:
                status, note = DrStatus.DECLINED, f"opted out: {decline}"
            elif status is DrStatus.ANNOUNCED:
                status, note = self._on_receipt(fields, None)
            repo.update_dr(conn, event_id, status.value, fields, self.actor, note)
        return self._after(event_id, status.value, note, before, resolve)

    def cancel(self, event_id: str, note: str = "cancelled by the utility") -> Receipt:
        """Cancel an open event (a closed one is left as it is)."""
        before = self._version()
        with self.port.engine.begin() as conn:
            row = repo.get_dr(conn, event_id)
            if row is None:
                return Receipt(event_id, None, "no such event")
            if row["status"] not in OPEN:
                return Receipt(event_id, row["status"], f"closed ({row['status']}): not changed")
            repo.update_dr(conn, event_id, DrStatus.CANCELLED.value, row["body"], self.actor, note)
        return self._after(event_id, DrStatus.CANCELLED.value, note, before, True)

    def status(self, event_id: str) -> str | None:
        """The stored status of an event (None when there is none)."""
        with self.port.engine.connect() as conn:
            row = repo.get_dr(conn, event_id)
        return None if row is None else row["status"]

    def row(self, event_id: str) -> dict[str, Any] | None:
        with self.port.engine.connect() as conn:
            return repo.get_dr(conn, event_id)

    # ------------------------------------------------------------------------------------
    def _on_receipt(self, fields: dict[str, Any], decline: str | None) -> tuple[DrStatus, str]:
        """As the API decides on receipt; an adapter's opt-out stores the event declined."""
        if decline is not None:
            return DrStatus.DECLINED, f"opted out: {decline}"
        event = dr_from_json({**fields, "status": DrStatus.ANNOUNCED.value})
        if event.contract_type is DrContractType.PRE_AGREED:
            return DrStatus.CONFIRMED, "pre-agreed: confirmed"
        cur = self.port.current
        ok, note = dr_contract.auto_confirm(
            self.port.site.dr_policy, event, cur.problem if cur else None, cur.plan if cur else None
        )
        return (DrStatus.CONFIRMED if ok else DrStatus.ANNOUNCED), note

    def _version(self) -> int | None:
        cur = self.port.current
        return cur.version if cur is not None else None

    def _after(
        self, eid: str, status: str, note: str, before: int | None, resolve: bool
    ) -> Receipt:
        ticket = None
        if resolve:
            try:
                ticket = self.port.request_resolve("dr_event")
            except Exception as exc:  # stored: the next boundary plans with it
                log.warning("%s: re-solve for %s not started: %s", self.actor, eid, exc)
        if self.on_change is not None:
            self.on_change(eid, status)
        return Receipt(eid, status, note, (), before, ticket)
