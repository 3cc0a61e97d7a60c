"""The deployment files (docs/deployment.md): the Procfile names every role and is where each
server's command is written once (``make run`` serves its ``ws`` line: daphne answers REST and
WebSocket on one port); the systemd
example units are valid units that never restart a configuration error."""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from exchange.management.commands.run_embedded import procfile, roles

ROOT = Path(__file__).resolve().parents[2]
UNITS = ROOT / "docs" / "deploy" / "systemd"


def test_the_procfile_names_every_role():
    assert set(procfile()) == {"web", "ws", "engine", "worker", "beat", "fix"}
    assert "manage.py serve_http" in procfile()["web"]  # the REST command of README "Serving HTTP"
    assert "exchange.asgi:application" in procfile()["ws"]
    # each line execs its role, so honcho's SIGTERM reaches the role and its exit code is the role's
    assert all(command.startswith("exec ") for command in procfile().values())


def test_make_run_serves_the_procfiles_ws_line():
    """The embedded mode's one port serves WebSocket too, which only daphne (the ``ws`` line)
    does: the ``web`` line's uvicorn processes serve REST alone."""
    web = roles("127.0.0.1", "8123")["web"]
    assert web[-1] == "exec " + procfile()["ws"].removeprefix("exec ") and web[-1].startswith("exec ")
    assert "BOURSE_BIND=127.0.0.1" in web and "BOURSE_WS_PORT=8123" in web


def test_the_systemd_units_are_valid(tmp_path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    names = []
    for unit in UNITS.glob("bourse*"):
        text = unit.read_text().replace("/srv/bourse/.venv/bin/python", sys.executable)
        name = unit.name.replace("@.service", "@8000.service")
        (tmp_path / name).write_text(text)
        names.append(name)
        if unit.suffix == ".service" and "migrate" not in unit.name:
            assert "RestartPreventExitStatus=78" in text and "TimeoutStopSec=30" in text, unit.name
            assert "EnvironmentFile=/etc/bourse/bourse.env" in text, unit.name
    result = subprocess.run([analyze, "verify", "--man=no", *[str(tmp_path / n) for n in names]],
                            capture_output=True, text=True, timeout=60)
    problems = [line for line in (result.stdout + result.stderr).splitlines()
                if line.strip() and "bourse.env" not in line and "engine-" not in line]
    assert problems == [], "\n".join(problems)
