"""Replicate checklist item 5's last clause (spec/replicate-api.md §9): while a prediction
is processing, GET shows the iterator output produced so far, not just growing logs."""

from __future__ import annotations

import time

from streaming_support import Server


def test_cf_get_shows_partial_iterator_output_while_processing(
    server: Server, versions: dict[str, str]
) -> None:
    p = server.create(versions["tokens"], {"count": 5, "pause": 0.4})
    partial: list[str] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        now = server.get(p["id"])
        if now["status"] != "processing" and now["status"] != "starting":
            break
        if now["status"] == "processing" and now["output"]:
            partial = list(now["output"])
            if len(partial) >= 2:
                break
        time.sleep(0.05)
    assert partial, "no partial output was seen while processing"
    assert len(partial) < 5  # seen before the end
    final = server.wait(p["id"])
    assert final["status"] == "succeeded"
    assert final["output"] == [f"t{i}" for i in range(5)]
    assert final["output"][: len(partial)] == partial
