"""``vendo agent``: a host that runs models for the shared queue (scaled mode).

An agent is the platform without its HTTP API: the scheduler (claiming under the agent's
name, only the pools on hardware it serves), the cluster relay (its runs' events to
every API server, cancels to it), the webhook relay (a prediction's webhooks are sent by
the process that runs it) and the credit watch, on PostgreSQL and a bucket. It registers
in the ``agents`` table with what it serves and heartbeats there
(:mod:`vendo.queue.liveness`); stopped cleanly, it removes itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Iterable
from typing import Any

from anyio import to_thread

from vendo.api.v1.context import Platform
from vendo.api.v1.webhooks import WebhookRelay
from vendo.app import open_platform, watch_agents
from vendo.config import Settings
from vendo.errors import ConfigError
from vendo.files.storage import FileStorage
from vendo.hardware import Hardware, capacity, server_hardware
from vendo.queue import EventBus, Queue
from vendo.scheduler import Scheduler, tracing
from vendo.store import Store
from vendo.webhooks.outbox import Outbox

__all__ = ["capacity", "check_settings", "run_agent", "served_skus"]

log = logging.getLogger(__name__)


def check_settings(settings: Settings) -> None:
    """An agent needs what it shares with the API servers: PostgreSQL and a bucket (and
    their secrets key, or it cannot open their predictions' secret inputs)."""
    url = settings.database_url or ""
    if not url.startswith(("postgresql:", "postgresql+psycopg:", "postgres:")):
        raise ConfigError(
            "an agent needs the PostgreSQL database the API servers use: set --database-url "
            "or VENDO_DATABASE_URL (postgresql://...)"
        )
    if not settings.storage_url:
        raise ConfigError(
            "an agent needs the bucket the API servers use: set --storage-url or "
            "VENDO_STORAGE_URL (s3://bucket or s3://bucket/prefix)"
        )
    if settings.secrets_key is None:
        # Not refused: a copy of the API servers' key file in the data dir also works.
        log.warning(
            "VENDO_SECRETS_KEY is not set: this agent opens cog.Secret inputs with the key "
            "in its data dir, so predictions with secrets sealed by an API server with "
            "another key fail here; set the same VENDO_SECRETS_KEY on every process"
        )


def served_skus(hardware: Hardware, asked: Iterable[str]) -> frozenset[str]:
    """The SKUs this agent serves: those asked (``--hardware``), each one this machine can
    place; by default every SKU it can place."""
    offered = hardware.offered_skus()
    asked = list(asked)
    for sku in asked:
        if sku not in hardware.catalog:
            known = ", ".join(s.sku for s in hardware.catalog)
            raise ConfigError(f"--hardware {sku}: no such SKU in the catalogue (known: {known})")
        if sku not in offered:
            raise ConfigError(
                f"--hardware {sku}: this machine cannot place it ({len(hardware.gpus)} GPUs; "
                f"it can place {', '.join(offered)})"
            )
    return frozenset(asked or offered)


async def run_agent(
    settings: Settings,
    name: str,
    skus: Iterable[str] = (),
    *,
    on_ready: Callable[[], Any] | None = None,
) -> int:
    """Run the agent until SIGTERM/SIGINT (0) or until it finds itself declared lost
    (1: its jobs were recovered by another process; a supervisor restarts it)."""
    check_settings(settings)
    tracing.setup()
    hardware = server_hardware(settings)
    serves = served_skus(hardware, skus)

    def scheduler(s: Settings, store: Store, bus: EventBus, storage: FileStorage) -> Scheduler:
        queue = Queue(store, worker_id=name)
        return Scheduler(s, store, bus, storage, queue=queue, hardware=hardware, serves=serves)

    p = await open_platform(settings, hardware, scheduler)
    stop = asyncio.Event()
    lost: list[bool] = []

    def declared_lost() -> None:
        lost.append(True)
        # its runs end unwritten: another process already decided their ends
        p.scheduler.abandon()  # type: ignore[union-attr]
        stop.set()

    relay, tasks = await _start(p, name, serves, hardware, declared_lost)
    sched = p.scheduler
    assert isinstance(sched, Scheduler) and p.cluster is not None
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    log.info("agent %s serving %s", name, ", ".join(sorted(serves)))
    if on_ready is not None:
        on_ready()
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await sched.stop()
        await p.cluster.stop()
        await relay.stop()
        if not lost:
            await to_thread.run_sync(p.store.agents.remove, name)
        await to_thread.run_sync(p.store.close)
        await to_thread.run_sync(tracing.flush)
    return 1 if lost else 0


async def _start(
    p: Platform,
    name: str,
    serves: frozenset[str],
    hardware: Hardware,
    on_lost: Callable[[], Any],
) -> tuple[WebhookRelay, list[asyncio.Task[Any]]]:
    """Register, then start the relays, the scheduler, the heartbeat and the credit
    watch: the webhook relay and its background tasks."""
    sched = p.scheduler
    assert isinstance(sched, Scheduler) and p.cluster is not None
    await to_thread.run_sync(p.store.agents.register, name, sorted(serves), capacity(hardware))
    relay = WebhookRelay(p, Outbox.from_settings(p.settings, p.store.engines.writer))
    await relay.start()
    await p.cluster.start()
    await sched.start()
    await relay.resume_owed()
    liveness = watch_agents(p, name=name, queue=sched.queue)
    liveness.on_lost = on_lost
    return relay, [
        asyncio.create_task(liveness.run(), name="vendo-heartbeat"),
        asyncio.create_task(p.credit.watch(sched), name="vendo-credit"),
    ]
