"""Shared constants and types of the /v1 tests (tests are not a package)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from vendo.api.v1.context import Platform

ADMIN_TOKEN = "admin-token"
VERSION = "ab" * 32
PRIVATE_VERSION = "cd" * 32

SCHEMA: dict[str, Any] = {
    "openapi": "3.0.2",
    "info": {"title": "Cog", "version": "0.1.0"},
    "paths": {},
    "components": {
        "schemas": {
            "Input": {
                "type": "object",
                "title": "Input",
                "required": ["text"],
                "properties": {
                    "text": {"type": "string", "title": "Text", "x-order": 0},
                    "count": {
                        "type": "integer",
                        "title": "Count",
                        "default": 1,
                        "minimum": 1,
                        "maximum": 10,
                        "x-order": 1,
                    },
                    "image": {"type": "string", "format": "uri", "x-order": 2},
                    "api_key": {
                        "type": "string",
                        "format": "password",
                        "x-cog-secret": True,
                        "x-order": 3,
                    },
                },
            },
            "Output": {"type": "string", "title": "Output"},
        }
    },
}


@dataclass
class Api:
    client: httpx.AsyncClient
    platform: Platform
    admin: dict[str, str]  # auth headers
    alice: dict[str, str]
    bob: dict[str, str]


class EchoScheduler:
    """A stand-in for ``vendo.scheduler.Scheduler`` that runs no model: each claimed
    prediction "returns" its ``text`` input (and, given an ``image`` input, that file as
    a file output) through the same store, storage and bus calls the real one makes."""

    def __init__(self, settings: Any, store: Any, bus: Any, storage: Any) -> None:
        from vendo.queue import Queue

        self.store, self.bus, self.storage = store, bus, storage
        self.queue = Queue(store)
        self.hold = False  # True: leave jobs queued (as if every runner were busy)
        self.tasks: set[Any] = set()

    def start(self) -> None:
        pass

    async def stop(self) -> None:
        for task in list(self.tasks):
            await task

    def notify(self, version_id: str) -> None:
        import asyncio

        if self.hold:
            return
        task = asyncio.get_running_loop().create_task(self._run(version_id))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def cancel(self, prediction_id: str, reason: str = "canceled") -> bool:
        from anyio import to_thread

        row = await to_thread.run_sync(self.queue.cancel_queued, prediction_id, reason)
        if row is not None:
            self.bus.publish(prediction_id, "done", {"reason": "canceled"})
        return row is not None

    async def _run(self, version_id: str) -> None:
        import shutil
        from pathlib import Path

        from anyio import to_thread

        from vendo.store import SUCCEEDED

        for job in await to_thread.run_sync(self.queue.claim, version_id, 10):
            row = self.store.get_prediction(job.prediction_id)
            self.store.mark_started(row.id)
            self.bus.publish(row.id, "start", {})
            self.store.append_logs(row.id, "echoing\n")
            self.bus.publish(row.id, "logs", "echoing\n")
            output: Any = row.run_input.get("text")
            if row.run_input.get("image"):
                out = Path(row.input_dir) / "out" / "result.png"
                out.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(row.run_input["image"], out)
                output = self.storage.encode_outputs(
                    row.id, row.owner_id, {"__vendo_file__": str(out)}
                )
            done = self.store.finish(
                row.id, SUCCEEDED, output=output, metrics={"predict_time": 0.01}
            )
            self.queue.complete(job.id)
            self.bus.publish(row.id, "output", done.output)
            self.bus.publish(row.id, "done", {})
