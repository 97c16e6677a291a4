"""Hostile bodies on Cog's HTTP API (``vendo serve-model``, issue 9): never a 5xx, a
400/422 in Cog's error shape instead, and the next prediction still runs."""

from __future__ import annotations

from typing import Any

HOSTILE: list[tuple[bytes, int, list[str]]] = [
    (b'{"input": {"text": NaN}}', 400, ["body"]),
    (b'{"input": {"text": "a", "count": Infinity}}', 400, ["body"]),
    (b'{"input": {"count": 1' + b"0" * 400 + b"}}", 422, ["body", "input", "count"]),
    (b'{"input": {"count": 9223372036854775808}}', 422, ["body", "input", "count"]),
    (b'{"input": {"text": "\\ud800"}}', 422, ["body", "input", "text"]),
    (b'{"input": {"text": ' + b"[" * 5000 + b"]" * 5000 + b"}}", 422, ["body"]),
    (b"[" * 100_000, 422, ["body"]),
]


async def test_hostile_bodies_are_refused_and_the_model_goes_on(serve: Any) -> None:
    served = await serve("srv_echo")
    for body, status, loc in HOSTILE:
        r = await served.client.post(
            "/predictions", content=body, headers={"Content-Type": "application/json"}
        )
        assert r.status_code == status, (body[:60], r.status_code, r.text[:300])
        assert r.json()["detail"][0]["loc"] == loc, (body[:60], r.json())
        ok = await served.client.post("/predictions", json={"input": {"text": "ok"}})
        assert ok.status_code == 200 and ok.json()["output"] == "ok", ok.text


async def test_a_failed_handoff_fails_one_prediction_and_frees_its_slot(
    serve: Any, monkeypatch: Any
) -> None:
    # what the platform's scheduler test drives, here on Cog's API (same RunnerProcess)
    from vendo.scheduler import process

    real = process.wire_frame

    def encode(message: dict[str, Any]) -> bytes:
        if message.get("type") == "predict" and message["input"].get("text") == "boom":
            raise RuntimeError("injected encode failure")
        return real(message)

    served = await serve("srv_echo")  # one slot: a leak would refuse the next one (409)
    monkeypatch.setattr(process, "wire_frame", encode)
    for _ in range(3):
        r = await served.client.post("/predictions", json={"input": {"text": "boom"}})
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "failed"
        assert "could not be handed to the model" in r.json()["error"]
        ok = await served.client.post("/predictions", json={"input": {"text": "ok"}})
        assert ok.status_code == 200 and ok.json()["output"] == "ok", ok.text
