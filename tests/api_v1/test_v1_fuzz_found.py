"""Server errors the schemathesis run found (test_v1_schemathesis.py), each kept as a
plain regression test: non-ASCII text where a signature or a number is expected is a
4xx, never a 500."""

from __future__ import annotations

from api_v1_support import Api


async def test_non_ascii_stream_token_is_403(api: Api) -> None:
    # hmac.compare_digest raised TypeError on a str with non-ASCII characters
    for token in ("é", "\u0089\u008b", "abc\u00e9"):
        r = await api.client.get(
            "/v1/predictions/3b\u0089/stream", params={"token": token}, headers=api.alice
        )
        assert r.status_code == 403, (token, r.text)
        assert r.headers["content-type"] == "application/problem+json"


async def test_non_ascii_download_signature_and_expiry_are_403(api: Api) -> None:
    for params in (
        {"owner": "alice", "expiry": "9999999999", "signature": "é"},
        {"owner": "alice", "expiry": "\u00b2", "signature": "x"},  # isdigit, not int()
        {"owner": "é", "expiry": "9999999999", "signature": "\u0660"},
    ):
        r = await api.client.get("/v1/files/f1/download", params=params)
        assert r.status_code == 403, (params, r.text)


async def test_search_limit_that_is_no_ascii_number_is_422(api: Api) -> None:
    for limit in ("\u00b2", "\u0663", "1.5"):
        r = await api.client.get(
            "/v1/search", params={"query": "hello", "limit": limit}, headers=api.alice
        )
        assert r.status_code == 422, (limit, r.text)
        assert r.json()["invalid_fields"][0]["field"] == "limit"
