"""Replicate checklist item 5's last clause (spec/replicate-api.md §9): while a prediction
is processing, GET shows the iterator output produced so far, not just growing logs."""

from __future__ import annotations

from streaming_support import Server

from support import until


def test_cf_get_shows_partial_iterator_output_while_processing(
    server: Server, versions: dict[str, str]
) -> None:
    p = server.create(versions["tokens"], {"count": 5, "pause": 0.4})
    partial: list[str] = []

    def partial_or_done() -> bool:
        now = server.get(p["id"])
        if now["status"] not in ("processing", "starting"):
            return True
        if now["status"] == "processing" and now["output"]:
            partial[:] = now["output"]
        return len(partial) >= 2

    until(partial_or_done, timeout=60, what="partial output")
    assert partial, "no partial output was seen while processing"
    assert len(partial) < 5  # seen before the end
    final = server.wait(p["id"])
    assert final["status"] == "succeeded"
    assert final["output"] == [f"t{i}" for i in range(5)]
    assert final["output"][: len(partial)] == partial
