"""GET shows a running prediction's logs (and iterator output) as they grow."""

from __future__ import annotations

import time

from streaming_support import Server


def test_logs_grow_while_processing(server: Server, versions: dict[str, str]) -> None:
    p = server.create(versions["tokens"], {"count": 6, "pause": 0.4})
    seen: list[tuple[str, list[str]]] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        now = server.get(p["id"])
        grew = not seen or seen[-1][0] != now["logs"]
        if now["status"] == "processing" and now["logs"] and grew:
            seen.append((now["logs"], list(now["output"] or [])))
        if now["status"] in ("succeeded", "failed", "canceled"):
            break
        time.sleep(0.05)
    final = server.get(p["id"])
    assert final["status"] == "succeeded"
    assert len(seen) >= 2, f"logs never grew while processing: {seen}"
    for logs, output in seen:
        assert final["logs"].startswith(logs)
        assert final["output"][: len(output)] == output  # partial iterator output
    assert seen[0][0] != final["logs"]
    assert final["logs"] == "".join(f"log line {i}\n" for i in range(6))
