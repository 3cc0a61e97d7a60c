"""Helpers of the TypeScript SDK tests: run node in sdk/typescript, run the compiled
integration scenarios, and make markets and traders with the operator commands."""
import json
import os
import shutil
import socket
import subprocess
from pathlib import Path

from tests.support import PYTHON, subprocess_env

ROOT = Path(__file__).resolve().parents[2]
SDK = ROOT / "sdk" / "typescript"
NODE = shutil.which("node")
OUT = SDK / ".examples-out"
TSC = "node_modules/typescript/bin/tsc"


def node(*args, env=None, timeout=300) -> subprocess.CompletedProcess:
    assert NODE, "node (20+) is required for the TypeScript SDK tests"
    assert (SDK / "node_modules" / ".bin").is_dir(), "SDK dependencies missing: run `make sdk-install`"
    return subprocess.run([NODE, *args], cwd=SDK, env=env, capture_output=True, text=True, timeout=timeout)


def ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    return result.stdout


def run_scenario(name: str, **env_extra) -> dict:
    """Runs a compiled integration scenario (sdk/typescript/integration/NAME.mts); its last line is JSON."""
    env = {**os.environ, **env_extra}
    out = ok(node(str(OUT / "sdk" / "typescript" / "integration" / f"{name}.mjs"), env=env, timeout=120))
    return json.loads(out.strip().splitlines()[-1])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def manage(*args) -> str:
    result = subprocess.run([PYTHON, "manage.py", *args], cwd=ROOT, env=subprocess_env(), capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr + result.stdout
    return result.stdout


def create_trader(name: str, *deposits: str, scheme: str = "hmac") -> dict:
    argv = ["create_trader", name, "--scheme", scheme, "--json"]
    for deposit in deposits:
        argv += ["--deposit", deposit]
    return json.loads(manage(*argv))
