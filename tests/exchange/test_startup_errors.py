"""Clear start-up errors (issue 17 item 5): every role's entry point, started as a real
process with one bad setting, exits non-zero with one line naming the setting and the fix,
and no traceback (exchange/preflight.py)."""
import socket
import subprocess
import sys
import time

import pytest
from cryptography.fernet import Fernet

from exchange import preflight
from exchange.management.commands.run_embedded import Supervisor
from tests.support import PYTHON, free_port, subprocess_env

GOOD_KEY = Fernet.generate_key().decode()


def entry_points(port: int) -> dict[str, list[str]]:
    """Each role as an operator starts it (README, Procfile)."""
    return {
        "web": [PYTHON, "manage.py", "serve_http", "--port", str(port), "--processes", "1"],  # uvicorn processes
        "ws": [PYTHON, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "exchange.asgi:application"],
        "engine": [PYTHON, "manage.py", "run_engine"],
        "fix": [PYTHON, "manage.py", "run_fix_gateway", "--port", str(port)],
        "worker": [PYTHON, "-m", "celery", "-A", "exchange", "worker", "--pool=solo", "--without-gossip",
                   "--without-mingle"],
        "beat": [PYTHON, "-m", "celery", "-A", "exchange", "beat"],
        "run": [PYTHON, "manage.py", "run_embedded", "--port", str(port), "--only", "web,engine"],
    }


ROLES = list(entry_points(0))


def start(role: str, env_extra: dict, *, port: int | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    env = {**subprocess_env(), **env_extra}
    env.pop("CELERY_TASK_ALWAYS_EAGER", None)
    return subprocess.run(entry_points(port or free_port())[role], env=env, capture_output=True, text=True,
                          timeout=timeout)


def assert_one_clear_line(result: subprocess.CompletedProcess, setting: str, code: int) -> str:
    output = result.stdout + result.stderr
    assert result.returncode == code, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    lines = [line for line in output.splitlines() if "cannot start" in line]
    assert len(lines) == 1, output[-3000:]
    line = lines[0]
    assert line.startswith("bourse "), line
    assert setting in line and ("Fix:" in line or "see README" in line), line
    return line


PRODUCTION = {"SECRET_KEY": "s" * 50, "BOURSE_ENCRYPTION_KEYS": GOOD_KEY}


@pytest.mark.parametrize("role", ROLES)
def test_a_malformed_encryption_key_stops_every_role(role):
    """Before: every role started, said ready, and answered 500 to every signed request."""
    line = assert_one_clear_line(start(role, {"BOURSE_ENCRYPTION_KEYS": f"{GOOD_KEY},not-a-fernet-key"}),
                                 "BOURSE_ENCRYPTION_KEYS", preflight.EXIT_CONFIG)
    assert "key 2 of 2 is not a Fernet key" in line
    assert "not-a-fernet-key" not in line  # a secret is never echoed


@pytest.mark.parametrize("role", ROLES)
def test_an_unreachable_database_stops_every_role(role):
    dead = f"postgres://bourse@127.0.0.1:{free_port()}/bourse"
    line = assert_one_clear_line(start(role, {"DATABASE_URL": dead, **PRODUCTION}), "DATABASE_URL",
                                 preflight.EXIT_UNAVAILABLE)
    assert "cannot connect to the database" in line


def test_migrate_and_other_commands_say_the_database_is_unreachable_in_one_line():
    dead = f"postgres://bourse@127.0.0.1:{free_port()}/bourse"
    env = {**subprocess_env(), "DATABASE_URL": dead, **PRODUCTION}
    for command in (["migrate", "--noinput"], ["reconcile"]):
        result = subprocess.run([PYTHON, "manage.py", *command], env=env, capture_output=True, text=True, timeout=60)
        assert_one_clear_line(result, "DATABASE_URL", preflight.EXIT_UNAVAILABLE)


@pytest.mark.parametrize("role", ROLES)
def test_an_unreachable_redis_stops_every_role(db, role):
    line = assert_one_clear_line(start(role, {"REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}), "REDIS_URL",
                                 preflight.EXIT_UNAVAILABLE)
    assert "cannot reach Redis" in line


@pytest.mark.parametrize("role, env, setting", [
    ("web", {"DATABASE_URL": "mysqlx://db/bourse", **PRODUCTION}, "DATABASE_URL"),
    ("ws", {"BOURSE_HTTP_REQUEST_TIMEOUT_S": "soon"}, "BOURSE_HTTP_REQUEST_TIMEOUT_S"),
    ("worker", {"REDIS_URL": "http://cache:6379/0"}, "REDIS_URL"),
    ("engine", {"DATABASE_URL": "postgres://bourse@db/bourse", "SECRET_KEY": "", "BOURSE_ALLOW_GENERATED_SECRETS": "0",
                "BOURSE_ENCRYPTION_KEYS": GOOD_KEY}, "SECRET_KEY"),
    ("beat", {"BOURSE_ENGINE_BATCH": "many"}, "BOURSE_ENGINE_BATCH"),
    ("fix", {"DEBUG": "perhaps"}, "DEBUG"),
])
def test_a_malformed_setting_is_named_with_its_fix(db, role, env, setting):
    assert_one_clear_line(start(role, env), setting, preflight.EXIT_CONFIG)


@pytest.mark.parametrize("role, setting", [("ws", "daphne port"), ("web", "BOURSE_WEB_PORT"), ("fix", "BOURSE_FIX_PORT"),
                                           ("run", "PORT")])
def test_a_port_in_use_stops_the_role(db, role, setting):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        line = assert_one_clear_line(start(role, {}, port=port), setting, preflight.EXIT_UNAVAILABLE)
    assert f"127.0.0.1:{port}" in line


def test_make_run_says_serving_only_once_the_server_answers(db):
    """``run_embedded`` (what ``make run`` runs) prints "Serving on" after /healthz answers."""
    import urllib.request

    port = free_port()
    env = {**subprocess_env(), "BOURSE_FIX_PORT": str(free_port())}
    process = subprocess.Popen([PYTHON, "manage.py", "run_embedded", "--port", str(port), "--only", "web"],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            assert line, "run_embedded stopped before serving"
            if line.startswith("Serving on"):
                break
        else:
            pytest.fail("no 'Serving on' line")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
            assert response.status == 200  # answering at the moment the line was printed
    finally:
        process.terminate()
        assert process.wait(timeout=30) == 0


def test_the_supervisor_stops_everything_when_a_role_cannot_start():
    """A configuration error (exit 78) is not restarted; the supervisor stops every role, exits 1."""
    said = []
    broken = [sys.executable, "-c", f"import sys; sys.exit({preflight.EXIT_CONFIG})"]
    healthy = [sys.executable, "-c", "import time; time.sleep(60)"]
    supervisor = Supervisor({"engine": broken, "web": healthy}, said.append, delay=0.05, healthy_after=5)
    started = time.monotonic()
    assert supervisor.run(tick=0.05) == 1
    assert time.monotonic() - started < 15
    assert said[0].startswith("role engine cannot start: its configuration is wrong (exit 78")
    assert said[-1] == "cannot start engine; stopping every role"
    assert all(child.poll() is not None for child in supervisor.children.values())
