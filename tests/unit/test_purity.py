"""controllers/ and forecasts/ are pure computation: they import with every edge library
blocked (web framework, scheduler, database, power flow, metrics, HTTP clients)."""

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EDGE = [
    "fastapi",
    "starlette",
    "uvicorn",
    "apscheduler",
    "sqlalchemy",
    "alembic",
    "psycopg",
    "pandapower",
    "simbench",
    "prometheus_client",
    "httpx",
    "requests",
    "socket",
    "urllib",
]
# pvlib imports requests itself (pvlib.iotools), so only the others are blocked at run time;
# the source scan below covers every name.
BLOCKED = [m for m in EDGE if m not in ("requests", "socket", "urllib")]

SCRIPT = """
import importlib, pkgutil, sys
for name in {blocked!r}:
    sys.modules[name] = None  # any import of it raises ImportError
for pkg in ("controllers", "forecasts"):
    mod = importlib.import_module(pkg)
    for info in pkgutil.walk_packages(mod.__path__, pkg + "."):
        importlib.import_module(info.name)
print("ok")
"""


def test_pure_packages_import_without_edge_libraries():
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT.format(blocked=BLOCKED)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "ok"


def test_pure_packages_name_no_edge_library():
    hits = []
    for pkg in ("controllers", "forecasts"):
        for path in (ROOT / pkg).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                names = []
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module:
                    names = [node.module]
                hits += [f"{path.relative_to(ROOT)}: {n}" for n in names if n.split(".")[0] in EDGE]
                if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "open":
                    hits.append(f"{path.relative_to(ROOT)}: open()")
    assert hits == []
