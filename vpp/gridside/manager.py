"""Start and stop the grid-side adapters a grid-side file asks for, around a running service
(``vpp run --grid-side FILE`` calls :func:`start` after the scheduler and :meth:`GridSide.stop`
before it shuts down)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from vpp.gridside.config import GridSideConfig
from vpp.gridside.iec104 import Iec104Outstation
from vpp.gridside.intake import ServicePort
from vpp.gridside.openadr2 import OpenAdr2Ven
from vpp.gridside.openadr3 import OpenAdr3Ven

log = logging.getLogger(__name__)


@dataclass
class GridSide:
    """The running adapters (each None when its section is absent)."""

    openadr2: OpenAdr2Ven | None = None
    openadr3: OpenAdr3Ven | None = None
    iec104: Iec104Outstation | None = None
    started: list[Any] = field(default_factory=list)

    def stop(self) -> None:
        """Stop every adapter, the last started first; one failing does not keep the others."""
        for a in reversed(self.started):
            try:
                a.stop()
            except Exception:
                log.exception("grid side: %s did not stop cleanly", type(a).__name__)
        self.started.clear()


def start(port: ServicePort, cfg: GridSideConfig) -> GridSide:
    """Start the adapters of ``cfg`` against the service ``port``."""
    gs = GridSide()
    try:
        if cfg.iec104 is not None:
            gs.iec104 = Iec104Outstation(port, cfg.iec104)
            gs.iec104.start()
            gs.started.append(gs.iec104)
        if cfg.openadr2 is not None:
            gs.openadr2 = OpenAdr2Ven(port, cfg.openadr2)
            gs.openadr2.start()
            gs.started.append(gs.openadr2)
        if cfg.openadr3 is not None:
            gs.openadr3 = OpenAdr3Ven(port, cfg.openadr3)
            gs.openadr3.start()
            gs.started.append(gs.openadr3)
    except Exception:
        gs.stop()
        raise
    names = [type(a).__name__ for a in gs.started]
    log.info("grid side: %s running", ", ".join(names) or "nothing")
    return gs
