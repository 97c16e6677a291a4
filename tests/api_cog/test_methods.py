"""Cog's HTTP API: OPTIONS and 405 name every method of the path (RFC 9110 §15.5.6)."""

from __future__ import annotations

from typing import Any

# path -> what the path serves (GET implies HEAD)
SERVED = {
    "/": {"GET", "HEAD"},
    "/health-check": {"GET", "HEAD"},
    "/openapi.json": {"GET", "HEAD"},
    "/docs": {"GET", "HEAD"},
    "/shutdown": {"POST"},
    "/predictions": {"POST"},
    "/predictions/p1": {"GET", "HEAD", "PUT"},
    "/predictions/p1/cancel": {"POST"},
    "/trainings": {"POST"},
    "/trainings/p1": {"GET", "HEAD", "PUT"},
    "/trainings/p1/cancel": {"POST"},
}


async def test_options_and_405_list_every_method_of_the_path(serve: Any) -> None:
    served = await serve("srv_echo")
    for path, methods in SERVED.items():
        r = await served.client.options(path)
        assert r.status_code == 204, path
        assert set(r.headers["allow"].split(", ")) == methods | {"OPTIONS"}, path
        for method in ("GET", "POST", "PUT", "PATCH", "DELETE"):
            if method in methods:
                continue
            r = await served.client.request(method, path)
            assert r.status_code == 405, (method, path)
            assert r.json() == {"detail": "Method Not Allowed"}  # as Cog's server says it
            assert set(r.headers["allow"].split(", ")) == methods | {"OPTIONS"}, (method, path)
    r = await served.client.get("/no-such-route")
    assert r.status_code == 404 and r.json() == {"detail": "Not Found"}
    # the served methods still work
    assert (await served.client.get("/predictions/p1")).status_code == 404
    r = await served.client.put("/predictions/p1", json={"input": {"text": "a"}})
    assert r.status_code == 200, r.text
