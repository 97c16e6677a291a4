"""Which agents live (scaled mode): an agent's heartbeat, and the watch every process
on PostgreSQL keeps for agents that stopped answering. A ``vendo serve`` with runners
on PostgreSQL registers and heartbeats as an agent too, under its worker id.

An agent heartbeats every ``Settings.agent_heartbeat_interval`` seconds. One whose last
heartbeat is older than ``Settings.agent_lost_timeout`` (killed, its host or network
gone) is *lost*: the first process to notice removes it and recovers its claimed jobs in
one transaction (:meth:`~vendo.queue.jobs.Queue.recover_lost`): those not yet started
go back to the queue, running ones fail as interrupted (the restart policy: models are
not assumed idempotent). Their streams end: the failure is published on the bus, which
the cluster relay carries to every other process.

The same look recovers *orphaned* claims, by the same policy: jobs claimed by a worker
that has no row at all (every claimer registers before it claims, so one without a row
stopped with claims left, claimed again after it was found lost, restarted under
another name, or is a server of an earlier version that claimed unregistered).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from anyio import to_thread

from vendo.queue.events import EventBus
from vendo.queue.jobs import LOST_ERROR, Queue
from vendo.status import PredictionStatus, terminal_events

__all__ = ["AgentLost", "Liveness"]

log = logging.getLogger(__name__)


class AgentLost(Exception):
    """This worker's row is gone (an agent's, a server's with runners): another process
    found it lost and recovered its jobs."""


class Liveness:
    """The heartbeat of agent ``name`` (None: a server without runners, which only
    watches) and the recovery of lost agents' jobs."""

    def __init__(
        self,
        queue: Queue,
        bus: EventBus,
        *,
        interval: float,
        timeout: float,
        name: str | None = None,
        on_lost: Callable[[], Any] | None = None,
    ) -> None:
        self.queue = queue
        self.bus = bus
        self.interval = interval
        self.timeout = timeout
        self.name = name
        self.on_lost = on_lost
        self.recovered: dict[str, list[str]] = {}  # agent -> its predictions recovered here

    async def beat(self) -> None:
        """One heartbeat (an agent) and one look for lost agents."""
        store = self.queue.store
        if self.name is not None and not await to_thread.run_sync(
            store.agents.heartbeat, self.name
        ):
            raise AgentLost(
                f"{self.name} was declared lost (no heartbeat for {self.timeout:g} s) "
                "and its jobs were recovered by another process"
            )
        lost = await to_thread.run_sync(self.queue.recover_lost, self.timeout)
        for agent, report in lost.items():
            log.warning(
                "%s %s: %d predictions back in the queue, %d failed, %d canceled",
                agent,
                "has claims but no agents row" if report.unregistered else "stopped answering",
                len(report.requeued),
                len(report.failed),
                len(report.canceled),
            )
            self.recovered[agent] = report.requeued + report.failed + report.canceled
            for pid in report.failed:
                for event, data in terminal_events(PredictionStatus.FAILED, LOST_ERROR):
                    self.bus.publish(pid, event, data)
            for pid in report.canceled:
                for event, data in terminal_events(PredictionStatus.CANCELED, None):
                    self.bus.publish(pid, event, data)

    async def run(self) -> None:
        """Beat until cancelled; a database hiccup is retried on the next beat. An agent
        declared lost calls ``on_lost`` and stops beating."""
        while True:
            try:
                await self.beat()
            except asyncio.CancelledError:
                raise
            except AgentLost as exc:
                log.error("%s; stopping", exc)
                if self.on_lost is not None:
                    self.on_lost()
                return
            except Exception:
                log.exception("agent heartbeat failed; retrying")
            await asyncio.sleep(self.interval)
