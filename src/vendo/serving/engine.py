"""``vendo serve-model``'s engine for one model: its runner children (one for
``predict:``, one for ``train:``), a :class:`~vendo.serving.service.PredictionService`
for each, and what they share (the work folder, the HTTP clients for downloads,
uploads and webhooks). ``start`` and ``stop`` bracket the server's life."""

from __future__ import annotations

import asyncio
import gc
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import httpx

from vendo import __version__
from vendo.files.addresses import refusal
from vendo.files.fetch import guarded_transport
from vendo.scheduler.process import RunnerProcess, RunnerSpec, RunnerState
from vendo.serving.options import CogServerOptions
from vendo.serving.outputs import OutputFiles
from vendo.serving.service import PredictionService
from vendo.webhooks.outbox import WebhookURLError
from vendo.webhooks.sender import WebhookSender

__all__ = ["ModelEngine"]

# kind of work -> (the options' attribute naming its code, the runner's mode)
_KINDS = {"predictions": ("predict_ref", "predict"), "trainings": ("train_ref", "train")}


class ModelEngine:
    """One model's runners and the services that run its predictions and trainings."""

    def __init__(self, options: CogServerOptions) -> None:
        self.options = options
        self.services: dict[str, PredictionService] = {}
        self.runners: list[RunnerProcess] = []
        self._work_dir: Path | None = None
        self._own_work_dir = False
        self._http: httpx.AsyncClient | None = None
        self._webhooks: WebhookSender | None = None
        self._webhook_http: httpx.AsyncClient | None = None

    def _runner(self, ref: str, mode: str) -> RunnerProcess:
        o = self.options
        spec = RunnerSpec(
            project=o.project,
            ref=ref,
            python=o.python,
            runtime_path=o.runtime_path,
            mode=mode,
            max_concurrency=o.max_concurrency,
            env=o.environment,
        )
        return RunnerProcess(
            spec,
            cancel_grace=o.cancel_grace,
            max_restarts=o.max_restarts,
            restart_backoff=o.restart_backoff,
        )

    def _webhook_sender(self) -> WebhookSender:
        o = self.options
        allow_private = o.fetch_limits.allow_private

        def check(address: str) -> None:
            why = refusal(address, allow_private=allow_private)
            if why is not None:
                raise WebhookURLError(f"webhooks may not target {why}")

        # Webhooks follow the address policy of input downloads (docs/api.md), checked
        # where the connection is made.
        self._webhook_http = httpx.AsyncClient(
            timeout=o.webhook_timeout,
            follow_redirects=False,
            trust_env=False,
            transport=guarded_transport(check),
        )
        return WebhookSender(
            user_agent=f"vendo/{__version__}",
            auth_token=o.webhook_auth_token,
            timeout=o.webhook_timeout,
            retry=o.webhook_retry,
            client=self._webhook_http,
        )

    async def start(self) -> None:
        """Start the runner children (their setup goes on: see :meth:`health_runner`)."""
        o = self.options
        if o.work_dir is None:
            self._work_dir = Path(tempfile.mkdtemp(prefix="vendo-serve-"))
            self._own_work_dir = True
        else:
            self._work_dir = o.work_dir
        self._http = httpx.AsyncClient(timeout=300.0, follow_redirects=False, trust_env=False)
        self._webhooks = self._webhook_sender()
        outputs = OutputFiles(o.upload_url, self._http)
        for kind, (attribute, mode) in _KINDS.items():
            ref = getattr(o, attribute)
            if ref is None:
                continue
            runner = self._runner(ref, mode)
            self.runners.append(runner)
            self.services[kind] = PredictionService(
                runner,
                kind=kind,
                work_dir=self._work_dir / kind,
                outputs=outputs,
                webhooks=self._webhooks,
                http=self._http,
                fetch_limits=o.fetch_limits,
                stream_capacity=o.stream_capacity,
                throttle_interval=o.throttle_interval,
                retention=o.retention,
            )
        for runner in self.runners:
            await runner.start()
        if o.freeze_gc:
            gc.collect()
            gc.freeze()

    async def stop(self) -> None:
        await asyncio.gather(*(r.close() for r in self.runners), return_exceptions=True)
        await asyncio.gather(*(s.aclose() for s in self.services.values()))
        if self._webhooks is not None:
            await self._webhooks.aclose()
        if self._webhook_http is not None:
            await self._webhook_http.aclose()
        if self._http is not None:
            await self._http.aclose()
        if self._own_work_dir and self._work_dir is not None:
            shutil.rmtree(self._work_dir, ignore_errors=True)

    @property
    def main_runner(self) -> RunnerProcess | None:
        service = self.services.get("predictions") or self.services.get("trainings")
        return service.runner if service is not None else None

    def health_runner(self) -> RunnerProcess | None:
        """The runner whose state health reports: the first one not yet ready (a failed
        one first), else the main one. With ``train:`` set there are two children, and
        READY must mean both are set up, or a training sent right after READY would find
        the trainer still starting."""
        by_concern = {RunnerState.SETUP_FAILED: 0, RunnerState.DEFUNCT: 1, RunnerState.STARTING: 2}
        pending = [r for r in self.runners if r.state in by_concern]
        if pending:
            return min(pending, key=lambda r: by_concern[r.state])
        return self.main_runner

    def openapi_document(self) -> dict[str, Any] | None:
        """The model's OpenAPI document: the runners' documents merged (None before
        any has finished its setup)."""
        documents = [r.openapi for r in self.runners if r.openapi]
        if not documents:
            return None
        merged: dict[str, Any] = json.loads(json.dumps(documents[0]))
        for extra in documents[1:]:
            for path, item in extra.get("paths", {}).items():
                merged.setdefault("paths", {}).setdefault(path, item)
            schemas = merged.setdefault("components", {}).setdefault("schemas", {})
            for name, schema in extra.get("components", {}).get("schemas", {}).items():
                schemas.setdefault(name, schema)
        return merged
