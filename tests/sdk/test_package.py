"""The TypeScript SDK as integrators get it: `npm pack` ships the built dist/ (ESM + CJS with
declarations) and no install-time build, so installing the tarball needs no TypeScript; and
every TypeScript snippet in its README type-checks on its own (it declares what it uses)."""
import json
import re
import subprocess
import tarfile

import pytest

from tests.sdk.helpers import NODE, SDK, TSC, node, ok

pytestmark = [pytest.mark.slow]


def test_the_packed_tarball_installs_without_building(compiled, tmp_path):
    packed = subprocess.run(["npm", "pack", "--pack-destination", str(tmp_path), "--silent"], cwd=SDK,
                            capture_output=True, text=True, timeout=300)
    assert packed.returncode == 0, packed.stdout + packed.stderr
    (tarball,) = tmp_path.glob("bourse-sdk-*.tgz")
    with tarfile.open(tarball) as tar:
        names = set(tar.getnames())
        manifest = json.load(tar.extractfile("package/package.json"))
    assert {"package/dist/esm/index.js", "package/dist/esm/index.d.ts", "package/dist/cjs/index.js",
            "package/dist/cjs/index.d.ts", "package/dist/cjs/package.json"} <= names
    assert not {"prepare", "preinstall", "install", "postinstall"} & set(manifest.get("scripts", {})), manifest["scripts"]

    app = tmp_path / "app"
    app.mkdir()
    (app / "package.json").write_text(json.dumps({"name": "app", "version": "1.0.0", "private": True}))
    installed = subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--loglevel=error", str(tarball)],
                               cwd=app, capture_output=True, text=True, timeout=600)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    assert not (app / "node_modules" / "typescript").exists()  # nothing was compiled on install
    cjs = subprocess.run([NODE, "-e", "const s = require('@bourse/sdk'); console.log(typeof s.Bourse)"], cwd=app,
                         capture_output=True, text=True, timeout=60)
    esm = subprocess.run([NODE, "--input-type=module", "-e", "import { BourseStream } from '@bourse/sdk'; "
                          "console.log(typeof BourseStream)"], cwd=app, capture_output=True, text=True, timeout=60)
    assert (cjs.stdout.strip(), esm.stdout.strip()) == ("function", "function"), cjs.stderr + esm.stderr


def test_readme_snippets_type_check_on_their_own():
    snippets = re.findall(r"```ts\n(.*?)```", (SDK / "README.md").read_text(), re.S)
    assert len(snippets) >= 3
    out = SDK / ".examples-out" / "readme"
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.mts"):
        old.unlink()
    for i, snippet in enumerate(snippets):
        # Each snippet is a module of its own: top-level await, nothing borrowed from another one.
        (out / f"snippet{i}.mts").write_text(snippet + "\nexport {};\n")
    (out / "tsconfig.json").write_text(json.dumps({
        "extends": "../../tsconfig.json",
        "compilerOptions": {"noEmit": True, "paths": {"@bourse/sdk": ["../../src/index.ts"]}},
        "include": ["*.mts"],
    }))
    ok(node(TSC, "-p", str(out / "tsconfig.json")))
