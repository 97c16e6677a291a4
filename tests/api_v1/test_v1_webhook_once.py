"""Exactly one terminal webhook message per prediction, against a real ``vendo serve``
and a real receiver, repeated over many predictions: async ones and ``Prefer: wait``
ones, with the ``["start", "completed"]`` filter. A receiver tells the event of a
delivery only by its body, so a ``start`` that carries a terminal status is a second
terminal message. A retried ``completed`` keeps its ``webhook-id``."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_v1_support import LiveServer, publish_models

from support import Receiver, pending_deliveries, until

pytestmark = pytest.mark.slow

TOKEN = "webhook-once-token"
TERMINAL = {"succeeded", "failed", "canceled"}
COUNT = 120  # predictions: half of them Prefer: wait
REFUSE_EVERY = 8  # every eighth prediction's first terminal attempt is answered 503


class _Receiver(Receiver):
    """Refuses the first terminal attempt of chosen predictions, so that the outbox
    retries them."""

    def __init__(self) -> None:
        super().__init__(respond=self._refuse_first)
        self.refuse: set[str] = set()  # prediction ids (by their input text)
        self.refused: dict[str, str] = {}  # prediction id -> webhook-id answered 503

    def _refuse_first(self, request: dict[str, Any]) -> int | None:
        body = json.loads(request["body"])
        text = (body.get("input") or {}).get("text")
        if body["status"] in TERMINAL and text in self.refuse and body["id"] not in self.refused:
            self.refused[body["id"]] = request["headers"]["webhook-id"]
            return 503
        return None

    @property
    def deliveries(self) -> list[tuple[str, dict[str, Any]]]:
        """(webhook-id, body) of every delivery."""
        return [(r["headers"]["webhook-id"], json.loads(r["body"])) for r in self.received()]

    def terminal(self) -> dict[str, list[str]]:
        """Prediction id -> the webhook-ids of the deliveries with a terminal body."""
        found: dict[str, list[str]] = defaultdict(list)
        for message_id, body in self.deliveries:
            if body["status"] in TERMINAL:
                found[body["id"]].append(message_id)
        return found


@pytest.fixture
def hooks() -> Iterator[_Receiver]:
    with _Receiver() as r:
        yield r


def test_exactly_one_terminal_message_per_prediction(tmp_path: Path, hooks: _Receiver) -> None:
    data_dir = tmp_path / "data"
    versions = publish_models(data_dir, tmp_path / "packages", {"echo": "api_echo"}, TOKEN)
    server = LiveServer(data_dir, tmp_path / "server.log", TOKEN)
    server.start()
    texts = [f"p{i}" for i in range(COUNT)]
    hooks.refuse = set(texts[::REFUSE_EVERY])

    def create(text: str) -> str:
        wait = int(text[1:]) % 2 == 0
        with httpx.Client(
            base_url=server.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60
        ) as c:
            r = c.post(
                "/v1/predictions",
                headers={"Prefer": "wait"} if wait else {},
                json={
                    "version": versions["echo"],
                    "input": {"text": text},
                    "webhook": hooks.url,
                    "webhook_events_filter": ["start", "completed"],
                },
            )
            assert r.status_code == 201, r.text
            return str(r.json()["id"])

    try:
        with ThreadPoolExecutor(8) as pool:
            ids = list(pool.map(create, texts))
        by_text = dict(zip(texts, ids, strict=True))
        refused = {by_text[t] for t in hooks.refuse}

        # every prediction's terminal message, the refused ones once more (the retry)
        def all_delivered() -> bool:
            seen = hooks.terminal()
            return all(seen.get(pid) for pid in ids) and all(len(seen[p]) >= 2 for p in refused)

        until(all_delivered, timeout=60, what="every terminal message")
        # a late duplicate could only come from a delivery still in the outbox
        until(lambda: pending_deliveries(data_dir) == [], what="the outbox to be done")
        seen = hooks.terminal()
        missing = [pid for pid in ids if not seen.get(pid)]
        assert missing == []
        # one terminal message per prediction: every terminal delivery of a prediction
        # has the same webhook-id (a retry), never a second one
        twice = {pid: ids_ for pid, ids_ in seen.items() if len(set(ids_)) != 1}
        assert twice == {}
        for pid in refused:
            assert len(seen[pid]) == 2, seen[pid]  # refused once, then accepted
            assert seen[pid][0] == seen[pid][1] == hooks.refused[pid]
        for pid in set(ids) - refused:
            assert len(seen[pid]) == 1, seen[pid]
        # a start message, when one came, says the prediction is running
        starts = [b for _, b in hooks.deliveries if b["status"] not in TERMINAL]
        assert all(b["status"] in ("starting", "processing") for b in starts)
    finally:
        server.stop()
