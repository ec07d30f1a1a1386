"""The OpenAPI schema describes every v1 endpoint and the docs page renders."""
from __future__ import annotations

import yaml

PATHS = {
    "/api/v1/models": ["get"],
    "/api/v1/models/{model_id}": ["get"],
    "/api/v1/model-versions/{version_id}": ["get"],
    "/api/v1/model-versions/by-hash/{hash}": ["get"],
    "/api/v1/model-versions/by-hash": ["post"],
    "/api/v1/tags": ["get"],
    "/api/v1/creators": ["get"],
    "/api/v1/me": ["get"],
    "/api/v1/api-keys": ["get", "post"],
    "/api/v1/api-keys/{key_id}": ["delete"],
    "/api/download/models/{version_id}": ["get"],
}


def test_schema_describes_v1(client, db):
    response = client.get("/api/schema/")
    assert response.status_code == 200
    schema = yaml.safe_load(response.content)
    for path, methods in PATHS.items():
        assert path in schema["paths"], path
        for method in methods:
            assert method in schema["paths"][path], (path, method)
    model = schema["components"]["schemas"]["ModelOut"]["properties"]
    assert {"modelVersions", "stats", "creator", "allowNoCredit"} <= set(model)
    version = schema["components"]["schemas"]["VersionOut"]["properties"]
    assert {"files", "trainedWords", "baseModel", "downloadUrl"} <= set(version)
    list_params = {p["name"] for p in schema["paths"]["/api/v1/models"]["get"]["parameters"]}
    assert {"types", "baseModels", "tag", "username", "query", "nsfw", "sort", "limit", "cursor"} <= list_params


def test_docs_page(client, db):
    response = client.get("/api/docs/")
    assert response.status_code == 200
    assert b"/api/schema/" in response.content


def test_docs_pages_load_nothing_from_another_host(client, db):
    for url in ("/api/docs/", "/api/redoc/"):
        response = client.get(url)
        assert response.status_code == 200
        html = response.content.decode()
        assert "/static/drf_spectacular_sidecar/" in html
        assert "googleapis" not in html and "cdn." not in html
        assert "default-src 'self'" in response["Content-Security-Policy"]
