"""OPTIONS and 405 on every route name exactly the methods the path serves (RFC 9110
§9.3.7, §15.5.6), whichever method the route was declared with first."""

from __future__ import annotations

import re

from api_v1_support import Api

from vendo.api.v1 import routes as v1_routes

CANDIDATES = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "QUERY")


def _served() -> dict[str, set[str]]:
    """Path (parameters filled in) -> the methods its handlers were declared for."""
    found: dict[str, set[str]] = {}
    for route in v1_routes():
        path = re.sub(r"{[^}]+}", "x1", route.path)  # type: ignore[attr-defined]
        found.setdefault(path, set()).update(route.methods or ())  # type: ignore[attr-defined]
    found["/openapi.json"] = {"GET", "HEAD"}
    return found


def _allow(value: str) -> list[str]:
    return [m.strip() for m in value.split(",")]


async def test_options_and_405_list_every_method_of_the_path(api: Api) -> None:
    served = _served()
    assert len(served) > 20
    for path, methods in served.items():
        expected = methods | {"OPTIONS"}
        r = await api.client.options(path)
        assert r.status_code == 204, path
        allow = _allow(r.headers["allow"])
        assert set(allow) == expected, (path, allow)
        assert len(allow) == len(expected), (path, allow)  # no method twice
        for method in CANDIDATES:
            # no Authorization: a served method answers 401 (or 200 for public routes),
            # never 405; any other method 405 with the same Allow
            r = await api.client.request(method, path)
            if method in methods:
                assert r.status_code != 405, (method, path)
            else:
                assert r.status_code == 405, (method, path, r.status_code)
                assert r.headers["allow"] == ", ".join(allow), (method, path)
                assert r.headers["content-type"] == "application/problem+json"
                if method == "HEAD":
                    continue  # no body
                body = r.json()
                assert body["status"] == 405
                assert method in body["detail"] and "allowed: " in body["detail"]


async def test_allow_order_is_fixed(api: Api) -> None:
    r = await api.client.request("PUT", "/v1/models")
    assert r.status_code == 405
    assert r.headers["allow"] == "GET, HEAD, POST, QUERY, OPTIONS"
    r = await api.client.request("DELETE", "/v1/predictions")
    assert r.headers["allow"] == "GET, HEAD, POST, OPTIONS"
    r = await api.client.request("GET", "/v1/predictions/x1/cancel")
    assert r.headers["allow"] == "POST, OPTIONS"


def test_a_method_declared_twice_for_one_path_is_refused() -> None:
    # Starlette would silently never reach the second declaration
    import pytest
    from starlette.responses import Response
    from starlette.routing import Route

    from vendo.api.routing import by_path

    def endpoint(request: object) -> Response:
        return Response()

    with pytest.raises(ValueError, match="GET /x is declared twice"):
        by_path([Route("/x", endpoint, methods=["GET"]), Route("/x", endpoint, methods=["GET"])])
