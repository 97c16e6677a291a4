"""Malformed URLs in a create (issue 9): a file input or webhook URL that Python's URL
parser or the IDNA codec refuses is the caller's 422 naming the field, never a 500,
and nothing is recorded."""

from __future__ import annotations

import pytest
from api_v1_support import VERSION, Api

BAD_URLS = [
    "http://[::1",  # unclosed IPv6 bracket
    "http://x:99999/",  # port out of range
    "http://x:abc/",  # port not a number
    "http://[::1]:99999/",
    "http://a..b/",  # empty label
    "http://" + "a" * 300 + ".com/",  # label over 63 characters
]


@pytest.mark.parametrize("url", BAD_URLS)
async def test_a_malformed_url_is_a_422_naming_the_field(api: Api, url: str) -> None:
    for field, body in (
        ("image", {"input": {"text": "a", "image": url}}),
        ("webhook", {"input": {"text": "a"}, "webhook": url}),
        ("webhook_completed", {"input": {"text": "a"}, "webhook_completed": url}),
    ):
        r = await api.client.post(
            "/v1/predictions", json={"version": VERSION, **body}, headers=api.alice
        )
        assert r.status_code == 422, (field, url, r.status_code, r.text[:200])
        assert [f["field"] for f in r.json()["invalid_fields"]] == [field], r.json()
    listed = await api.client.get("/v1/predictions", headers=api.alice)
    assert listed.json()["results"] == []
