"""The Python SDK as a package: mypy --strict passes on it, and `pip install ./sdk/python`
into a fresh virtual environment works (from the pip cache / PyPI, no other network), ships
py.typed, and imports."""
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SDK = ROOT / "sdk" / "python"


def test_mypy_strict():
    result = subprocess.run([sys.executable, "-m", "mypy", "bourse"], cwd=SDK, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "strict = true" in (SDK / "pyproject.toml").read_text()


@pytest.mark.slow
def test_pip_install_into_a_fresh_venv(tmp_path):
    # A copy, so setuptools' build/ folder lands outside the checkout.
    source = tmp_path / "bourse-sdk"
    shutil.copytree(SDK, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__", ".mypy_cache"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    install = subprocess.run([str(python), "-m", "pip", "install", "--disable-pip-version-check", "-q", str(source)],
                             capture_output=True, text=True, timeout=600)
    assert install.returncode == 0, install.stdout + install.stderr
    probe = ("import bourse, pathlib; from bourse import Client, Stream, BourseError; "
             "print(bourse.__version__, pathlib.Path(bourse.__file__).with_name('py.typed').exists())")
    out = subprocess.run([str(python), "-c", probe], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert out.returncode == 0 and out.stdout.split() == ["0.1.0", "True"], out.stdout + out.stderr
    # Without the ccxt extra the ccxt adapter says what to install.
    missing = subprocess.run([str(python), "-c", "import bourse.ccxt"], capture_output=True, text=True, timeout=60,
                             cwd=tmp_path)
    assert missing.returncode != 0 and "ccxt" in missing.stderr

    wheel_dir = tmp_path / "wheels"
    built = subprocess.run([str(python), "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheel_dir), str(source)],
                           capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stdout + built.stderr
    (wheel,) = wheel_dir.glob("bourse_sdk-0.1.0-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {"bourse/py.typed", "bourse/client.py", "bourse/ws.py", "bourse/ccxt/pro.py"} <= set(names)
