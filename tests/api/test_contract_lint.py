"""docs/openapi.yaml is clean for the linters integrators run: Redocly CLI (`recommended`) and
Spectral (`spectral:oas`) report no error and no warning (tools pinned in tools/package.json)."""
import yaml

from apikeys.authentication import PrivateApi
from exchange import docs

from .contract_tools import redocly_lint, spectral_lint


def test_redocly_recommended_reports_nothing():
    report = redocly_lint(docs.OPENAPI_PATH)
    problems = [(p["ruleId"], p["message"]) for p in report["problems"]]
    assert report["totals"]["errors"] == 0 and report["totals"]["warnings"] == 0, problems


def test_spectral_oas_reports_nothing():
    findings = spectral_lint(docs.OPENAPI_PATH)
    assert findings == [], [(f["code"], f["message"], ".".join(map(str, f["path"]))) for f in findings]


def test_the_linters_do_catch_problems(tmp_path):
    """The two tests above are not vacuous: a spec missing summaries, security and servers fails both."""
    spec = yaml.safe_load(docs.OPENAPI_PATH.read_text())
    spec.pop("servers")
    operation = spec["paths"]["/api/v1/time"]["get"]
    del operation["summary"], operation["security"], operation["description"]
    broken = tmp_path / "broken.yaml"
    broken.write_text(yaml.safe_dump(spec, sort_keys=False))
    rules = {p["ruleId"] for p in redocly_lint(broken)["problems"]}
    assert {"operation-summary", "security-defined", "no-empty-servers"} <= rules, rules
    codes = {f["code"] for f in spectral_lint(broken)}
    assert {"oas3-api-servers", "operation-description"} <= codes, codes


def test_no_base_class_docstring_leaks_into_operations():
    spec = yaml.safe_load(docs.OPENAPI_PATH.read_text())
    base_doc = PrivateApi.__doc__.strip()
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            assert base_doc not in operation.get("description", ""), (method, path)
            assert operation.get("summary") and operation.get("description"), (method, path)
