"""The README's commands run as printed: the Start section's ``./run.sh`` examples and the
"Talking to the service" walkthrough (start with an admin key, create a utility key, read
setpoints and flexibility, post a DR call), each taken from the README itself.

Two things differ from a person's terminal, and only these: the database is a temporary
SQLite file (``VPP_DATABASE_URL``), so that ``var/`` is left alone, and the service listens on
a free port (``VPP_PORT``, the URLs' 8000 replaced by it), so that a test never collides with
another server on the machine.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _blocks() -> list[str]:
    return re.findall(r"```sh\n(.*?)```", README, flags=re.S)


def _inline(prefix: str) -> list[str]:
    return [c for c in re.findall(r"`([^`\n]+)`", README) if c.startswith(prefix)]


@pytest.fixture
def env(tmp_path):
    port = _free_port()
    e = {
        **os.environ,
        "VPP_DATABASE_URL": f"sqlite:///{tmp_path / 'vpp.sqlite3'}",
        "VPP_PORT": str(port),
    }
    return e, port


def _wait_ready(port: int, proc: subprocess.Popen, timeout_s: float = 240.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the service exited before it was ready"
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2.0).json().get("ready"):
                return
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(0.5)
    raise AssertionError(f"the service on port {port} was not ready in {timeout_s} s")


def _stop(proc: subprocess.Popen) -> str:
    proc.send_signal(signal.SIGINT)
    try:
        out, _ = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    return out


@pytest.mark.slow
def test_the_start_sections_commands(env):
    e, port = env
    commands = _inline("./run.sh ")
    assert {"./run.sh --help", "./run.sh run --once", "./run.sh run --speed 60"} <= set(commands)
    for cmd in commands:
        if cmd == "./run.sh run --speed 60":
            proc = subprocess.Popen(
                cmd.split(), cwd=ROOT, env=e, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                text=True,
            )  # fmt: skip
            _wait_ready(port, proc)
            out = _stop(proc)
            assert "Traceback" not in out, out[-3000:]
            continue
        done = subprocess.run(
            cmd.split(), cwd=ROOT, env=e, capture_output=True, text=True, timeout=600
        )
        assert done.returncode == 0, f"{cmd}\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
        assert "Failed to import plotly" not in done.stderr  # no alarming import noise


@pytest.mark.slow
def test_talking_to_the_service_as_printed(env, tmp_path):
    e, port = env
    start = next(b for b in _blocks() if "VPP_ADMIN_KEY=change-me ./run.sh" in b)
    talk = next(b for b in _blocks() if "db create-key" in b and "curl" in b)
    line = start.strip().splitlines()[0].split("#")[0].strip()
    assert line == "VPP_ADMIN_KEY=change-me ./run.sh"
    proc = subprocess.Popen(
        ["./run.sh"], cwd=ROOT, env={**e, "VPP_ADMIN_KEY": "change-me"},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        _wait_ready(port, proc)
        work = tmp_path / "terminal2"
        work.mkdir()
        (work / ".venv").symlink_to(ROOT / ".venv")
        script = "set -euo pipefail\n" + talk.replace("127.0.0.1:8000", f"127.0.0.1:{port}")
        done = subprocess.run(
            ["bash", "-c", script], cwd=work, env=e, capture_output=True, text=True, timeout=300
        )
    finally:
        out = _stop(proc)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert '"setpoints"' in done.stdout
    assert '"p_import_min_kw"' in done.stdout
    assert '"event_id":"SG-DEMO-1"' in done.stdout.replace(" ", "")
    assert "Traceback" not in out, out[-3000:]
