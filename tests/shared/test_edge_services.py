"""Every route of every service answers an anonymous caller 401 before it parses anything: no
field list, no 422, whatever the body. Public paths are the exceptions, named here."""
from __future__ import annotations

import re

import httpx
import pytest
from fastapi.routing import APIRoute

from services.system import BACKEND_SERVICES, service_app
from shared.settings import Settings

pytestmark = pytest.mark.unit

PUBLIC = {"/healthz", "/readyz", "/docs/assets/{name}"}  # Swagger UI's files


# The console is reached with a session, not a token: tests/console say what it answers anonymously.
@pytest.mark.parametrize("service", BACKEND_SERVICES)
async def test_no_route_answers_an_anonymous_caller_with_anything_but_401(service):
    settings = Settings(database_url="postgresql://unused/unused", tokens_json="{}",
                        docs_access="authenticated", metrics_access="authenticated")
    app = service_app(service, settings)
    routes = [r for r in app.routes if isinstance(r, APIRoute) and r.path not in PUBLIC]
    assert routes, "a service with no routes"
    answers = {}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://test") as client:
        for route in routes:
            path = re.sub(r"\{[^}]+\}", "x", route.path)
            for method in route.methods:
                response = await client.request(method, path, content=b'{"name": ',
                                                headers={"content-type": "application/json"})
                answers[f"{method} {route.path}"] = (response.status_code, response.json()["error"])
    wrong = {k: v for k, v in answers.items() if v != (401, "unauthenticated")}
    assert not wrong, wrong


async def test_the_documents_and_metrics_need_a_token_unless_made_public():
    closed = service_app("registry", Settings(database_url="postgresql://unused/unused",
                                              tokens_json="{}", docs_access="authenticated",
                                              metrics_access="authenticated"))
    open_ = service_app("registry", Settings(database_url="postgresql://unused/unused",
                                             tokens_json="{}", docs_access="public",
                                             metrics_access="off"))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=closed),
                                 base_url="http://test") as client:
        assert (await client.get("/openapi.json")).status_code == 401
        assert (await client.get("/asyncapi.json")).status_code == 401
        assert (await client.get("/metrics")).status_code == 401
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=open_),
                                 base_url="http://test") as client:
        assert (await client.get("/openapi.json")).status_code == 200
        assert (await client.get("/asyncapi.json")).status_code == 200
        # off: not served at all, so a token would not help either
        assert "/metrics" not in {getattr(r, "path", "") for r in open_.routes}


async def test_the_api_documents_page_loads_swagger_ui_from_its_own_process():
    app = service_app("registry", Settings(database_url="postgresql://unused/unused",
                                           tokens_json="{}", docs_access="public"))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://test") as client:
        page = (await client.get("/docs")).text
        sources = re.findall(r'(?:src|href)="([^"]+)"', page) + re.findall(r"url: '([^']+)'", page)
        assert sources and all(s.startswith("/") for s in sources), sources
        for asset in ("/docs/assets/swagger-ui-bundle.js", "/docs/assets/swagger-ui.css"):
            answer = await client.get(asset)
            assert answer.status_code == 200 and len(answer.content) > 10_000
        assert (await client.get("/docs/assets/index.html")).status_code == 404  # only the three
