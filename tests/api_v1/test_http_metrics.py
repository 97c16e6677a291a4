"""``GET /metrics``: the HTTP request counters and timings, by method, route template
and status (never the raw path), with made-up methods folded into one label."""

from __future__ import annotations

import re

from api_v1_support import Api


def _sample(text: str, name: str, **labels: str) -> float:
    """The value of one series in Prometheus' text format (0 when absent)."""
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        match = re.fullmatch(rf"{name}\{{(.*)\}} (\S+)", line)
        if match and ",".join(sorted(match.group(1).split(","))) == want:
            return float(match.group(2))
    return 0.0


async def test_requests_are_counted_by_route_template_and_status(api: Api) -> None:
    c = api.client
    for _ in range(3):
        assert (await c.get("/v1/account", headers=api.alice)).status_code == 200
    assert (await c.get("/v1/predictions/nothing-here", headers=api.alice)).status_code == 404
    assert (await c.request("BREW", "/v1/account", headers=api.alice)).status_code == 405
    assert (await c.request("MASH", "/v1/account", headers=api.alice)).status_code == 405
    text = (await c.get("/metrics", headers=api.admin)).text
    total = "vendo_http_requests_total"
    assert _sample(text, total, method="GET", route="/v1/account", status="200") == 3
    # the template, not the id: one series for every prediction
    assert _sample(text, total, method="GET", route="/v1/predictions/{id}", status="404") == 1
    assert _sample(text, total, method="other", route="/v1/account", status="405") == 2
    assert "BREW" not in text and "MASH" not in text
    timed = "vendo_http_request_duration_seconds_count"
    assert _sample(text, timed, method="GET", route="/v1/account") == 3
