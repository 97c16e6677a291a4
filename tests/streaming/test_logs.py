"""GET shows a running prediction's logs (and iterator output) as they grow."""

from __future__ import annotations

from streaming_support import Server

from support import until


def test_logs_grow_while_processing(server: Server, versions: dict[str, str]) -> None:
    p = server.create(versions["tokens"], {"count": 6, "pause": 0.4})
    seen: list[tuple[str, list[str]]] = []

    def finished() -> bool:
        now = server.get(p["id"])
        grew = not seen or seen[-1][0] != now["logs"]
        if now["status"] == "processing" and now["logs"] and grew:
            seen.append((now["logs"], list(now["output"] or [])))
        return now["status"] in ("succeeded", "failed", "canceled")

    until(finished, timeout=60, what="the prediction to finish")
    final = server.get(p["id"])
    assert final["status"] == "succeeded"
    assert len(seen) >= 2, f"logs never grew while processing: {seen}"
    for logs, output in seen:
        assert final["logs"].startswith(logs)
        assert final["output"][: len(output)] == output  # partial iterator output
    assert seen[0][0] != final["logs"]
    assert final["logs"] == "".join(f"log line {i}\n" for i in range(6))
