"""The command line as shell scripts use it: output captured by ``$(...)`` or cut by ``head``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "VPP_DATABASE_URL": f"sqlite:///{tmp_path / 'vpp.db'}"}


def test_create_key_prints_only_the_key_on_stdout(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "vpp.cli", "db", "create-key", "--name", "gw", "--role", "utility"],
        cwd=ROOT, env=_env(tmp_path), capture_output=True, text=True, check=True,
    )  # fmt: skip
    lines = done.stdout.splitlines()
    assert len(lines) == 1 and len(lines[0]) >= 32 and " " not in lines[0]
    assert "shown only this once" in done.stderr and lines[0] not in done.stderr


def test_a_reader_that_goes_away_is_not_an_error(tmp_path):
    # `vpp config reference | head -1`: the pipe closes after one line; the command must end
    # quietly with status 0, not with a BrokenPipeError traceback.
    script = f"set -o pipefail; {sys.executable} -m vpp.cli config reference | head -1"
    done = subprocess.run(
        ["bash", "-c", script], cwd=ROOT, env=_env(tmp_path), capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() and "Traceback" not in done.stderr
