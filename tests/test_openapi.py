"""OpenAPI: every route is documented, the document is valid OpenAPI 3.1, real answers
match it, and the Swagger UI is served from the package (no CDN)."""

from __future__ import annotations

from typing import Any

import httpx
import jsonschema
import pytest
import redis
from flask import Flask
from openapi_spec_validator import validate

from simfarm.common.settings import Settings
from simfarm.gateway.app import create_app
from simfarm.gateway.openapi import UndocumentedRoute, build_openapi, document, undocumented
from simfarm.gateway.openapi.builder import openapi_path


@pytest.fixture(scope="module")
def app(settings: Settings, redis_client: redis.Redis) -> Flask:
    return create_app(settings, redis_client)


@pytest.fixture(scope="module")
def spec(gateway: str) -> dict[str, Any]:
    response = httpx.get(f"{gateway}/api/v1/openapi.json", timeout=30)
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


def test_every_route_of_the_app_is_documented(app: Flask) -> None:
    missing = undocumented(app)
    assert missing == [], (
        "add @document(...) to these views (see simfarm/gateway/openapi/registry.py): "
        + "; ".join(missing)
    )
    built = build_openapi(app)
    documented = {(path, m) for path, item in built["paths"].items() for m in item}
    for rule in app.url_map.iter_rules():
        path = openapi_path(rule)
        for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}:
            assert (path, method.lower()) in documented


def test_an_undocumented_route_is_named() -> None:
    app = Flask("t", static_folder=None)

    @app.get("/fine")
    @document(responses={200: "ok"})
    def fine() -> str:
        """Fine."""
        return "ok"

    @app.post("/forgotten/<item>")
    def forgotten(item: str) -> str:
        return item

    assert undocumented(app) == ["POST /forgotten/<item> (forgotten)"]
    with pytest.raises(UndocumentedRoute, match="/forgotten/<item>"):
        build_openapi(app)
    assert list(build_openapi(app, strict=False)["paths"]) == ["/fine"]


def test_served_document_is_valid_openapi_3_1_built_from_the_models(
    spec: dict[str, Any],
) -> None:
    validate(spec)  # raises on any violation of the OpenAPI 3.1 schema
    assert spec["openapi"] == "3.1.0"
    submit = spec["paths"]["/api/v1/jobs"]["post"]
    assert submit["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/JobSpec"
    }
    job_spec = spec["components"]["schemas"]["JobSpec"]
    # pydantic's constraints show up, e.g. the priority range and forbidden extra fields
    assert job_spec["properties"]["priority"]["maximum"] == 10
    assert job_spec["additionalProperties"] is False
    params = {p["name"]: p for p in spec["paths"]["/api/v1/jobs"]["get"]["parameters"]}
    assert params["limit"]["schema"]["maximum"] == 1000
    assert params["state"]["schema"] == {"$ref": "#/components/schemas/JobState"}
    ids = [op["operationId"] for item in spec["paths"].values() for op in item.values()]
    assert len(ids) == len(set(ids))


def _check(spec: dict[str, Any], method: str, path: str, response: httpx.Response) -> None:
    """Validate a real answer against the documented schema of its status."""
    op = spec["paths"][path][method]
    documented = op["responses"].get(str(response.status_code))
    assert documented is not None, f"{method} {path} answered undocumented {response.status_code}"
    schema = documented["content"]["application/json"]["schema"]
    jsonschema.validate(
        response.json(), {**schema, "components": spec["components"]},
        cls=jsonschema.Draft202012Validator,
    )


def test_real_answers_match_the_document(spec: dict[str, Any], http: httpx.Client) -> None:
    created = http.post("/api/v1/jobs", json={"argv": ["sleep", "60"], "priority": 0,
                                              "name": "openapi"})
    _check(spec, "post", "/api/v1/jobs", created)
    job_id = created.json()["id"]
    _check(spec, "get", "/api/v1/jobs/{job_id}", http.get(f"/api/v1/jobs/{job_id}"))
    _check(spec, "get", "/api/v1/jobs", http.get("/api/v1/jobs", params={"limit": 3}))
    _check(spec, "get", "/api/v1/jobs/{job_id}/events", http.get(f"/api/v1/jobs/{job_id}/events"))
    _check(spec, "post", "/api/v1/jobs/{job_id}/cancel", http.post(f"/api/v1/jobs/{job_id}/cancel"))
    _check(spec, "get", "/api/v1/health", http.get("/api/v1/health"))
    bad = http.post("/api/v1/jobs", json={"argv": ["x"], "priority": 99})
    assert bad.status_code == 422
    _check(spec, "post", "/api/v1/jobs", bad)
    _check(spec, "get", "/api/v1/jobs/{job_id}", http.get("/api/v1/jobs/nope"))


def test_swagger_ui_is_served_from_the_package(http: httpx.Client) -> None:
    page = http.get("/api/v1/docs")
    assert page.status_code == 200 and "swagger-ui-bundle.js" in page.text
    assert "http" not in page.text.replace('lang="en"', "")  # no CDN: relative URLs only
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css", "swagger-init.js"):
        response = http.get(f"/api/v1/docs/assets/{asset}")
        assert response.status_code == 200 and len(response.content) > 200
    assert http.get("/api/v1/docs/assets/index.html").status_code == 404
    assert http.get("/api/v1/docs/assets/..%2Fapp.py").status_code == 404
