"""The breaking-change check (exchange.apicompat; docs/versioning.md): the current OpenAPI
document against the latest release, and deliberately broken documents it must refuse."""
import copy
import subprocess
import sys

import pytest
import yaml

from exchange import apicompat, docs
from exchange.apicompat import breaking_changes, unlisted

ROOT = docs.DOCS_DIR.parent
RELEASES = sorted((docs.DOCS_DIR / "releases").glob("v*/openapi.yaml"),
                  key=lambda p: tuple(int(x) for x in p.parent.name[1:].split(".")))
CHANGELOG = (ROOT / "CHANGELOG.md").read_text()


def load(path):
    return yaml.safe_load(path.read_text())


def test_current_document_has_no_unlisted_breaking_change_since_the_last_release():
    assert RELEASES, "docs/releases/ holds the released documents"
    changes = unlisted(breaking_changes(load(RELEASES[-1]), load(docs.OPENAPI_PATH)), CHANGELOG)
    assert changes == [], [str(c) for c in changes]


def test_info_version_is_semantic_and_has_a_changelog_section():
    version = load(docs.OPENAPI_PATH)["info"]["version"]
    major, minor, patch = (int(x) for x in version.split("."))
    assert f"\n## {version} " in CHANGELOG
    released = [p.parent.name[1:] for p in RELEASES]
    assert version not in released or load(ROOT / f"docs/releases/v{version}/openapi.yaml") == load(docs.OPENAPI_PATH)


def _orders(spec):
    return spec["paths"]["/api/v1/orders"]


BREAKS = {
    "path removed": lambda s: s["paths"].pop("/api/v1/fills"),
    "operation removed": lambda s: _orders(s).pop("delete"),
    "parameter removed": lambda s: _orders(s)["get"].__setitem__(
        "parameters", [p for p in _orders(s)["get"]["parameters"] if p["name"] != "status"]),
    "new required parameter": lambda s: _orders(s)["get"]["parameters"].append(
        {"in": "query", "name": "since", "required": True, "schema": {"type": "string"}}),
    "response field removed": lambda s: s["components"]["schemas"]["Order"]["properties"].pop("average_price"),
    "field renamed": lambda s: s["components"]["schemas"]["Fill"]["properties"].__setitem__(
        "fee_currency", s["components"]["schemas"]["Fill"]["properties"].pop("fee_asset")),
    "enum value removed": lambda s: s["components"]["schemas"]["SideEnum"]["enum"].remove("sell"),
    "new required request field": lambda s: s["components"]["schemas"]["OrderSubmit"]["required"].append("client_order_id"),
    "request type narrowed": lambda s: s["components"]["schemas"]["OrderSubmit"]["properties"].__setitem__(
        "client_order_id", {"type": "string"}),
    "response removed": lambda s: _orders(s)["post"]["responses"].pop("202"),
}


@pytest.mark.parametrize("kind", BREAKS)
def test_each_kind_of_breaking_change_is_detected(kind):
    new = copy.deepcopy(load(docs.OPENAPI_PATH))
    BREAKS[kind](new)
    changes = breaking_changes(load(docs.OPENAPI_PATH), new)
    assert changes, kind
    assert unlisted(changes, CHANGELOG) == changes  # not in the changelog: refused


def test_the_check_fails_on_a_deliberately_broken_spec(tmp_path):
    new = load(docs.OPENAPI_PATH)
    _orders(new).pop("delete")
    new["components"]["schemas"]["Order"]["properties"].pop("average_price")
    broken = tmp_path / "openapi.yaml"
    broken.write_text(yaml.safe_dump(new))
    cli = [sys.executable, "-m", "exchange.apicompat", str(docs.OPENAPI_PATH), str(broken), str(ROOT / "CHANGELOG.md")]
    result = subprocess.run(cli, capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "DELETE /api/v1/orders: operation removed" in result.stdout
    assert "response field `average_price` removed" in result.stdout
    # Listed under the newest version's "### Breaking", the same change passes.
    changelog = tmp_path / "CHANGELOG.md"
    # every operation the check names for the removed field (all those answering an Order)
    named = [line.split(": response field")[0].removeprefix("breaking: ")
             for line in result.stdout.splitlines() if "`average_price` removed" in line]
    assert "GET /api/v1/orders/{order_id}" in named
    listed = ("- `DELETE /api/v1/orders` removed; use `DELETE /api/v1/orders/{order_id}`.\n- "
              + ", ".join(f"`{operation}`" for operation in named) + ": `average_price` removed.\n")
    if "### Breaking\n" in CHANGELOG:  # the newest section has a Breaking list already: add to it
        changelog.write_text(CHANGELOG.replace("### Breaking\n", "### Breaking\n" + listed, 1))
    else:
        changelog.write_text(CHANGELOG.replace("### Added", "### Breaking\n" + listed + "\n### Added", 1))
    result = subprocess.run(cli[:-1] + [str(changelog)], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stdout


def test_additions_are_not_breaking():
    old = load(docs.OPENAPI_PATH)
    new = copy.deepcopy(old)
    new["paths"]["/api/v1/withdrawals"] = copy.deepcopy(new["paths"]["/api/v1/fills"])
    new["components"]["schemas"]["Order"]["properties"]["expires_at"] = {"type": ["string", "null"]}
    new["components"]["schemas"]["OrderSubmit"]["properties"]["expire_after_s"] = {"type": "integer"}
    _orders(new)["get"]["parameters"].append({"in": "query", "name": "side", "schema": {"type": "string"}})
    assert breaking_changes(old, new) == []
    assert apicompat.main([str(docs.OPENAPI_PATH), str(docs.OPENAPI_PATH)]) == 0
