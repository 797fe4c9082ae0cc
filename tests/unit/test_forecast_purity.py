"""forecasts/ is pure computation: it imports none of the edge libraries."""

from __future__ import annotations

import subprocess
import sys

BLOCKED = ("fastapi", "sqlalchemy", "pandapower", "apscheduler", "prometheus_client", "httpx")

SCRIPT = f"""
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {BLOCKED!r}:
            raise ImportError("edge library imported by forecasts: " + name)
sys.meta_path.insert(0, Block())
import forecasts.backtest, forecasts.baselines, forecasts.load, forecasts.pv, forecasts.types
"""


def test_forecasts_import_without_edge_libraries():
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
