"""The TypeScript SDK's own checks, as CI runs them: generated types fresh against
docs/openapi.yaml, `tsc --noEmit` strict over the package and its examples, the Vitest unit
tests, and a build that serves both ES modules and CommonJS with type declarations."""
import json
import os
import re

import pytest

from tests.sdk.helpers import SDK, TSC, node, ok

pytestmark = [pytest.mark.slow]


def test_generated_types_are_fresh_against_the_committed_spec():
    ok(node("scripts/generate.mjs", "--check"))


def test_package_and_examples_type_check_strictly():
    assert json.loads(re.sub(r"//.*", "", (SDK / "tsconfig.json").read_text()))["compilerOptions"]["strict"] is True
    ok(node(TSC, "--noEmit", "-p", "tsconfig.json"))
    ok(node(TSC, "--noEmit", "-p", "tsconfig.examples.json"))


def test_vitest_unit_tests_pass():
    out = ok(node("node_modules/vitest/vitest.mjs", "run", env={**os.environ, "NO_COLOR": "1", "CI": "true"}))
    passed = re.search(r"Tests\s+(\d+) passed", out)
    assert passed and int(passed.group(1)) > 0 and "failed" not in out, out[-3000:]


def test_the_build_serves_esm_and_commonjs(compiled):
    cjs = ok(node("-e", "const s = require('@bourse/sdk'); console.log(typeof s.Bourse, typeof s.BourseError)"))
    esm = ok(node("--input-type=module", "-e", "import { Bourse } from '@bourse/sdk'; console.log(typeof Bourse)"))
    assert (cjs.strip(), esm.strip()) == ("function function", "function")
    assert (SDK / "dist" / "esm" / "index.d.ts").is_file() and (SDK / "dist" / "cjs" / "index.d.ts").is_file()
