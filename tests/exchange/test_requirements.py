"""The lock files pin what the requirements files ask for: `make run` and `make test` install
from the locks alone (``pip install --no-deps``), so a pin added to requirements*.txt without
`make lock` would otherwise not be installed at all, or a different version would."""
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PIN = re.compile(r"^([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?==([^\s;#]+)")


def pins(path: Path) -> dict[str, str]:
    found = {}
    for line in path.read_text().splitlines():
        match = PIN.match(line.strip())
        if match:
            found[re.sub(r"[-_.]+", "-", match.group(1)).lower()] = match.group(2)
    return found


@pytest.mark.parametrize(("wanted", "lock"), [
    ("requirements.txt", "requirements.lock"),
    ("requirements-test.txt", "requirements-test.lock"),
    ("requirements.txt", "requirements-test.lock"),  # tests run the versions production runs
])
def test_lock_pins_every_requirement_at_its_version(wanted, lock):
    locked = pins(ROOT / lock)
    missing = {name: version for name, version in pins(ROOT / wanted).items() if locked.get(name) != version}
    assert not missing, f"{lock} does not pin {missing}: run `make lock`"


def test_runtime_lock_agrees_with_the_test_lock():
    runtime, test = pins(ROOT / "requirements.lock"), pins(ROOT / "requirements-test.lock")
    differing = {name: (version, test.get(name)) for name, version in runtime.items() if test.get(name) != version}
    assert not differing, f"the runtime and test locks disagree: {differing}; run `make lock`"
