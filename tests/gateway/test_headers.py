"""Security headers (issue 11, class 9): nosniff on every response, nothing cached from an
authenticated route, a self-only CSP without framing on /docs, and Swagger UI served by the gateway."""
from __future__ import annotations

import re
import uuid

import pytest
import requests

from tests.support.api import b64

AUTHENTICATED = [("GET", "/taskinfo?taskid={task}"), ("GET", "/tasks"), ("GET", "/taskinfo?taskid=" + str(uuid.uuid4())),
                 ("GET", "/taskinfo"), ("GET", "/ops/queues"), ("POST", "/submit")]


def policy(header: str) -> dict[str, list[str]]:
    """A Content-Security-Policy as {directive: [sources]}."""
    return {name: sources for name, *sources in (part.split() for part in header.split(";") if part.strip())}


@pytest.fixture
def task(api) -> str:
    return api.submitted("calc_hash", {"content": b64(uuid.uuid4().bytes)})


@pytest.mark.parametrize(("method", "path"), AUTHENTICATED)
@pytest.mark.parametrize("credential", [True, False], ids=["authenticated", "anonymous"])
def test_authenticated_routes_are_never_stored_and_never_sniffed(api, api_as, task, method, path, credential):
    """200s, 404s, 400s and 401s alike: what an authenticated route answers stays out of every cache."""
    client = api if credential else api_as(None)
    response = client.request(method, path.format(task=task), json={})
    assert response.headers["Cache-Control"] == "no-store", (response.status_code, path)
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert policy(response.headers["Content-Security-Policy"]) == {"default-src": ["'none'"],
                                                                   "frame-ancestors": ["'none'"]}
    assert response.headers["X-Frame-Options"] == "DENY"


@pytest.mark.parametrize("path", ["/ping", "/health", "/metrics", "/openapi.json", "/docs", "/no/such/route"])
def test_every_response_carries_nosniff(gateway_url, worker, path):
    response = requests.get(gateway_url + path, timeout=5)
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"


def test_docs_page_has_a_self_only_policy_and_no_framing(gateway_url, worker):
    response = requests.get(gateway_url + "/docs", timeout=5)
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/html")
    csp = policy(response.headers["Content-Security-Policy"])
    assert csp["frame-ancestors"] == ["'none'"] and csp["default-src"] == ["'none'"]
    assert all(sources == ["'self'"] for name, sources in csp.items()
               if name in ("script-src", "style-src", "connect-src")), csp
    assert csp["img-src"] == ["'self'", "data:"]  # Swagger UI's stylesheet draws its icons as data: URIs
    assert not any("unsafe" in source for sources in csp.values() for source in sources)
    assert "<script>" not in response.text  # no inline script: the start-up code is a file of its own


def test_docs_names_no_external_url_and_every_asset_is_served(gateway_url, worker):
    """Issue 11, class 9: /docs loaded Swagger UI from a public CDN, without SRI, and not offline."""
    page = requests.get(gateway_url + "/docs", timeout=5).text
    assert "http://" not in page and "https://" not in page and "//" not in page.replace("<!doctype html>", "")
    assets = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert len(assets) == 3 and all(url.startswith("/docs/assets/") for url in assets)
    for url in assets:
        response = requests.get(gateway_url + url, timeout=5)
        assert response.status_code == 200, url
        assert "max-age=31536000" in response.headers["Cache-Control"] and "immutable" in response.headers["Cache-Control"]
        assert response.headers["Content-Type"].startswith(("text/css", "text/javascript"))
    start_up = requests.get(gateway_url + next(url for url in assets if "docs.js" in url), timeout=5).text
    assert '"/openapi.json"' in start_up and "validatorUrl: null" in start_up


def test_swagger_ui_supports_openapi_3_1_and_says_where_it_came_from(gateway_url, worker):
    notice = requests.get(gateway_url + "/docs/assets/swagger-ui/NOTICE", timeout=5)
    version = re.match(r"Swagger UI (\d+)\.(\d+)\.(\d+),", notice.text)
    assert version and (int(version[1]), int(version[2])) >= (5, 0), notice.text[:80]  # 3.1 support came in 5.0
    assert "npm" in notice.text and "sha256" in notice.text
    assert requests.get(gateway_url + "/docs/assets/swagger-ui/LICENSE", timeout=5).text.lstrip().startswith("Apache License")


@pytest.mark.parametrize("name", ["../__init__.py", "..%2F__init__.py", "swagger-ui", "nope.js", "%2Fetc%2Fpasswd"])
def test_only_the_asset_folder_is_served(gateway_url, worker, name):
    response = requests.get(gateway_url + "/docs/assets/" + name, timeout=5)
    assert response.status_code == 404 and response.json() == {"code": 404, "message": "Not Found"}
