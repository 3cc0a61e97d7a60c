"""Runs the pinned contract tools of tools/package.json (installed by `make test`)."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from django.conf import settings

ROOT = Path(settings.BASE_DIR)
TOOLS = ROOT / "tools"
BIN = TOOLS / "node_modules" / ".bin"
# Offline and quiet: no telemetry, no update checks.
ENV = {**os.environ, "REDOCLY_TELEMETRY": "off", "REDOCLY_SUPPRESS_UPDATE_NOTICE": "true", "NO_UPDATE_NOTIFIER": "1"}


def tool(name: str) -> str:
    path = BIN / name
    assert path.exists(), f"{path} is missing: `make test` installs tools/ (cd tools && npm ci)"
    return str(path)


def run(*args: str, timeout: int = 180) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=TOOLS, env=ENV, capture_output=True, text=True, timeout=timeout)


def redocly_lint(spec: Path) -> dict:
    """Redocly's `recommended` rules: ``{"totals": {...}, "problems": [...]}``."""
    result = run(tool("redocly"), "lint", str(spec), "--config", "redocly.yaml", "--format=json")
    start = result.stdout.find("{")
    assert start >= 0, result.stdout + result.stderr
    return json.loads(result.stdout[start:])


def spectral_lint(spec: Path) -> list[dict]:
    """Spectral's `spectral:oas` rules: every finding (severity 0 error, 1 warning, 2 info, 3 hint)."""
    result = run(tool("spectral"), "lint", "-r", ".spectral.yaml", "-f", "json", "--quiet", str(spec))
    start = result.stdout.find("[")
    assert start >= 0, result.stdout + result.stderr
    return json.loads(result.stdout[start:])
