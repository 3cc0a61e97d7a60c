"""Deprecation and Sunset headers follow the OpenAPI document (exchange.deprecation)."""
import pytest
import yaml
from django.test import Client

from exchange import deprecation, docs
from exchange.schema import contract_hook

pytestmark = pytest.mark.django_db


@pytest.fixture
def time_deprecated(monkeypatch):
    spec = yaml.safe_load(docs.OPENAPI_PATH.read_text())
    operation = spec["paths"]["/api/v1/time"]["get"]
    operation.update({"deprecated": True, "x-deprecated-at": "2027-01-01", "x-sunset": "2027-07-01"})
    spec["paths"]["/api/v1/markets/{symbol}"]["get"].update({"deprecated": True, "x-deprecated-at": "2027-02-01"})
    monkeypatch.setattr(deprecation, "table", lambda: deprecation.table_from(spec))


def test_deprecated_operations_answer_with_deprecation_and_sunset(time_deprecated, market, settings):
    settings.BOURSE_PUBLIC_URL = "https://bourse.example.net"
    response = Client().get("/api/v1/time")
    assert response.status_code == 200
    assert response["Deprecation"] == "@1798761600"  # 2027-01-01T00:00:00Z
    assert response["Sunset"] == "Thu, 01 Jul 2027 00:00:00 GMT"
    assert response["Link"] == '<https://bourse.example.net/docs/changelog>; rel="deprecation"; type="text/html"'
    detail = Client().get(f"/api/v1/markets/{market.symbol}")
    assert detail["Deprecation"] == "@1801440000"  # 2027-02-01T00:00:00Z
    assert "Sunset" not in detail  # no sunset set yet


def test_other_operations_carry_no_deprecation_header(time_deprecated, market):
    for url in ("/api/v1/markets", f"/api/v1/markets/{market.symbol}/book"):
        assert "Deprecation" not in Client().get(url)


def test_nothing_is_deprecated_in_the_published_document():
    deprecation.table.cache_clear()
    assert deprecation.table() == []
    assert "Deprecation" not in Client().get("/api/v1/time")


def test_the_document_declares_the_headers_of_a_deprecated_operation():
    spec = yaml.safe_load(docs.OPENAPI_PATH.read_text())
    operation = spec["paths"]["/api/v1/time"]["get"]
    operation.update({"deprecated": True, "x-deprecated-at": "2027-01-01", "x-sunset": "2027-07-01"})
    operation["responses"]["200"]["headers"] = {}
    contract_hook(spec, None, None, True)
    assert {"Deprecation", "Sunset", "Link"} <= set(operation["responses"]["200"]["headers"])
    del operation["x-deprecated-at"]
    with pytest.raises(ValueError, match="x-deprecated-at"):
        contract_hook(spec, None, None, True)
