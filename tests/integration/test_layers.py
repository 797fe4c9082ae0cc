"""The layer contract (``.importlinter``) holds on the repository and fails on a wrong-way
import: each case copies the four packages, adds one import that runs the wrong way, and runs
the real ``lint-imports`` on the copy."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("vpp", "api", "controllers", "forecasts")
LINT = Path(sys.executable).with_name("lint-imports")


def _lint(cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(cwd), "COLUMNS": "200"}
    return subprocess.run(
        [str(LINT), "--no-cache", "--config", str(cwd / ".importlinter")],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("house")
    for pkg in PACKAGES:
        shutil.copytree(ROOT / pkg, out / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / ".importlinter", out / ".importlinter")
    return out


def test_the_repository_keeps_every_contract():
    done = _lint(ROOT)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "3 kept, 0 broken" in done.stdout


def test_the_copy_is_what_is_checked(tree):
    done = _lint(tree)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]


@pytest.mark.parametrize(
    ("module", "line", "expected"),
    [
        # a pure package reaching into storage: a layer and the purity contract both break
        (
            "controllers/problem.py",
            "import vpp.store.repo",
            [
                "controllers is not allowed to import vpp.store",
                "controllers is not allowed to import sqlalchemy",
            ],
        ),
        # the ground importing the layer that stands on it
        (
            "vpp/park/model.py",
            "import vpp.plan.cycle",
            ["vpp.park is not allowed to import vpp.plan"],
        ),
        # accounting reaching into the simulation (issue 11's metered -> simulate)
        (
            "vpp/accounting/kpis.py",
            "import vpp.sim.closed_loop",
            ["vpp.accounting is not allowed to import vpp.sim"],
        ),
        # two siblings of one layer: the runtime must not depend on the simulation
        (
            "vpp/runtime/metrics.py",
            "import vpp.sim.report",
            ["vpp.runtime is not allowed to import vpp.sim"],
        ),
        # the API reaching up into the command line
        (
            "api/schemas.py",
            "import vpp.commands.run",
            ["api is not allowed to import vpp.commands"],
        ),
        # a forecaster importing an edge library directly
        (
            "forecasts/types.py",
            "import pandapower",
            ["forecasts is not allowed to import pandapower"],
        ),
    ],
)
def test_a_wrong_way_import_breaks_the_contract(tree, module, line, expected):
    path = tree / module
    before = path.read_text(encoding="utf-8")
    try:
        path.write_text(before + f"\n{line}  # noqa\n", encoding="utf-8")
        done = _lint(tree)
    finally:
        path.write_text(before, encoding="utf-8")
    assert done.returncode != 0
    for text in expected:
        assert text in done.stdout, done.stdout[-3000:]
    assert module.removesuffix(".py").replace("/", ".") in done.stdout
