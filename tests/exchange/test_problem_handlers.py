"""A request Django refuses before any view still gets the API's problem body on an API path
(``exchange.problems.handler400/403/404``), never Django's HTML pages; the console keeps them."""
import json

from django.test import RequestFactory

from exchange import problems


def _problem(response) -> dict:
    assert response["Content-Type"] == "application/problem+json", (response.status_code, response.content[:200])
    return json.loads(response.content)


def test_a_host_the_deployment_does_not_serve_is_a_problem_on_the_api(client, db):
    response = client.get("/api/v1/markets", HTTP_HOST="evil.example")
    assert response.status_code == 400
    body = _problem(response)
    assert body["code"] == "bad_request" and body["status"] == 400 and body["type"].endswith("#bad_request")


def test_the_console_keeps_djangos_pages_for_the_same_refusal(client, db):
    response = client.get("/console/", HTTP_HOST="evil.example")
    assert response.status_code == 400 and response["Content-Type"].startswith("text/html")


def test_an_unknown_api_path_is_a_not_found_problem(client, db):
    response = client.get("/api/v1/no-such-resource")
    assert response.status_code == 404 and _problem(response)["code"] == "not_found"


def test_permission_denied_outside_drf_is_a_problem_on_the_api():
    factory = RequestFactory()
    body = _problem(problems.handler403(factory.get("/api/v1/account")))
    assert body["code"] == "permission_denied" and body["status"] == 403
    assert problems.handler403(factory.get("/console/"))["Content-Type"].startswith("text/html")
