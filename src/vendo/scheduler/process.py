"""The parent side of one runner child: spawn it, talk to it, supervise it.

A :class:`RunnerProcess` owns one ``python -m vendo.runner serve`` child at a time
(see docs/design/runtime.md). It hands out concurrency slots, forwards predictions,
delivers each prediction's events to the caller as they arrive, and replaces a child
that dies, hangs, or ignores a cancel. It knows nothing about HTTP, so the HTTP server
of ``vendo serve-model`` and the platform's runner pools can both use it.

Events reach the caller through a plain callback called on the event loop, straight
from the socket's ``data_received``: no queue, no task, no thread per message.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import shutil
import signal
import socket
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, cast

from vendo.runner.protocol import PARENT_ENV, FrameDecoder, ProtocolError
from vendo.scheduler.runner_spec import (
    RunnerBusy,
    RunnerNotReady,
    RunnerSpec,
    RunnerState,
    SetupInfo,
    handoff_error,
    now_iso,
    wire_frame,
)

__all__ = [
    "EventCallback",
    "RunnerBusy",
    "RunnerNotReady",
    "RunnerProcess",
    "RunnerSpec",
    "RunnerState",
    "SetupInfo",
    "Slot",
    "WORKER_EXITED",
    "handoff_error",
]

log = logging.getLogger(__name__)

WORKER_EXITED = "worker exited unexpectedly"
HEALTHCHECK_TIMEOUT = 5.0

EventCallback = Callable[[dict[str, Any]], None]


class Slot:
    """One reserved concurrency slot; use it for one prediction or release it."""

    __slots__ = ("_runner", "_used")

    def __init__(self, runner: RunnerProcess) -> None:
        self._runner = runner
        self._used = False

    def release(self) -> None:
        if not self._used:
            self._used = True
            self._runner._reserved -= 1

    def _take(self) -> None:
        if self._used:
            raise RuntimeError("slot already used or released")
        self._used = True
        self._runner._reserved -= 1


@dataclass
class _InFlight:
    id: str
    on_event: EventCallback
    done: asyncio.Future[dict[str, Any]]
    cancel_timer: asyncio.TimerHandle | None = None
    cancel_escalated: bool = False


class _Channel(asyncio.Protocol):
    """The parent's end of the socketpair, bound to one child generation."""

    def __init__(self, runner: RunnerProcess, generation: int) -> None:
        self._runner = runner
        self._generation = generation
        self._decoder = FrameDecoder()
        self.transport: asyncio.Transport | None = None
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement the interface without subclassing it
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        try:
            messages = self._decoder.feed(data)
        except ProtocolError as exc:
            self._runner._child_gone(self._generation, f"protocol error: {exc}")
            return
        for message in messages:
            self._runner._dispatch(self._generation, message)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)
        self._runner._child_gone(self._generation, "connection closed")


class RunnerProcess:
    """Supervises one runner child: states, slots, predictions, restarts.

    Typical use::

        runner = RunnerProcess(spec)
        await runner.start()
        if await runner.wait_ready() is RunnerState.READY:
            slot = runner.acquire_slot()            # None when all slots are taken
            done = runner.predict(slot, "p1", {"text": "hi"}, on_event=print)
            result = await done                     # the child's ``done`` message
        await runner.close()
    """

    def __init__(
        self,
        spec: RunnerSpec,
        *,
        cancel_grace: float = 10.0,
        max_restarts: int = 3,
        restart_backoff: float = 0.5,
        healthcheck_timeout: float = HEALTHCHECK_TIMEOUT + 5.0,
        hung_after_missed_healthchecks: int = 3,
        on_runner_log: Callable[[str, str], None] | None = None,
    ) -> None:
        self.spec = spec
        self.cancel_grace = cancel_grace
        self.max_restarts = max_restarts
        self.restart_backoff = restart_backoff
        self.healthcheck_timeout = healthcheck_timeout
        self.hung_after_missed_healthchecks = hung_after_missed_healthchecks
        self._on_runner_log = on_runner_log

        self.setup = SetupInfo()
        self.openapi: dict[str, Any] | None = None
        self.max_concurrency = 1
        self.has_healthcheck = False
        self.setup_error: str | None = None
        self.restarts = 0

        self._state = RunnerState.STARTING
        self._generation = 0
        self._process: asyncio.subprocess.Process | None = None
        self._channel: _Channel | None = None
        self._inflight: dict[str, _InFlight] = {}
        self._reserved = 0
        self._crashes_in_a_row = 0
        self._missed_healthchecks = 0
        self._healthchecks: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._ids = itertools.count(1)
        self._changed = asyncio.Event()
        self._closing = False
        self._intentional_kill = False
        self._tasks: set[asyncio.Task[Any]] = set()
        # children not yet waited for: close() reaps them (a ResourceWarning otherwise)
        self._unreaped: set[asyncio.subprocess.Process] = set()

    # --- state ---------------------------------------------------------------------

    @property
    def state(self) -> RunnerState:
        if self._state is RunnerState.READY and self.busy_slots >= self.max_concurrency:
            return RunnerState.BUSY
        return self._state

    @property
    def busy_slots(self) -> int:
        return self._reserved + len(self._inflight)

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def accepting(self) -> bool:
        return self._state is RunnerState.READY and not self._closing

    def _set_state(self, state: RunnerState) -> None:
        self._state = state
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_ready(self, timeout: float | None = None) -> RunnerState:
        """Wait until setup ends: READY, SETUP_FAILED or DEFUNCT."""

        async def settle() -> RunnerState:
            while self._state is RunnerState.STARTING and not self._closing:
                await self._changed.wait()
            return self.state

        return await asyncio.wait_for(settle(), timeout)

    # --- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        """Spawn the child; returns once it runs (setup goes on in the background)."""
        self._generation += 1
        generation = self._generation
        self.setup = SetupInfo()
        self._set_state(RunnerState.STARTING)
        parent_sock, child_sock = socket.socketpair()
        # Each child gets its own temp folder, removed once it has exited: a model's
        # temp files (and outputs it never cleaned up) do not outlive a killed child.
        tmpdir = tempfile.mkdtemp(prefix="vendo-runner-")
        env = self.spec.environment()
        env["TMPDIR"] = tmpdir
        env[PARENT_ENV] = str(os.getpid())  # the child ends itself when we are gone
        try:
            self._process = await asyncio.create_subprocess_exec(
                *self.spec.command(child_sock.fileno()),
                pass_fds=(child_sock.fileno(),),
                cwd=str(self.spec.project),
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                # its own process group, so a kill also reaches what the model spawned
                start_new_session=True,
            )
        except BaseException:
            parent_sock.close()
            shutil.rmtree(tmpdir, ignore_errors=True)
            raise
        finally:
            child_sock.close()
        loop = asyncio.get_running_loop()
        _, channel = await loop.create_unix_connection(
            lambda: _Channel(self, generation), sock=parent_sock
        )
        self._channel = channel
        process = self._process
        self._unreaped.add(process)
        assert process.stdout is not None and process.stderr is not None
        self._spawn(self._pump(process.stdout, "stdout", generation))
        self._spawn(self._pump(process.stderr, "stderr", generation))
        self._spawn(self._watch(process, generation, tmpdir))

    async def close(self, timeout: float = 5.0) -> None:
        """Ask the child to finish and exit; kill it if it takes longer than ``timeout``."""
        self._closing = True
        self._changed.set()
        process = self._process
        if process is not None and process.returncode is None:
            self._send({"type": "shutdown"})
            try:
                await asyncio.wait_for(process.wait(), timeout)
            except asyncio.TimeoutError:
                self._kill(process)
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(process.wait(), 5.0)
        self._child_gone(self._generation, "runner closed")
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        for child in list(self._unreaped):  # killed, but its watcher was cancelled
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(child.wait(), 5.0)
        self._unreaped.clear()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @staticmethod
    def _kill(process: asyncio.subprocess.Process) -> None:
        if process.returncode is not None:
            return
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            with contextlib.suppress(ProcessLookupError):
                process.kill()

    async def _watch(
        self, process: asyncio.subprocess.Process, generation: int, tmpdir: str
    ) -> None:
        try:
            await self._watch_exit(process, generation)
        finally:
            shutil.rmtree(tmpdir, ignore_errors=True)

    async def _watch_exit(self, process: asyncio.subprocess.Process, generation: int) -> None:
        code = await process.wait()
        self._unreaped.discard(process)
        # What the model started (its process group) goes with the child, however the
        # child ended: helpers left running would hold memory, ports or the GPU.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        # The exit can be seen before the socket's last frames (a ``setup_failed`` or a
        # ``done`` sent just before exiting) are read: give the socket time to drain to
        # its EOF, which ends the child through connection_lost with nothing lost. A
        # grandchild holding the socket open must not stall us for long.
        channel = self._channel
        if channel is not None and generation == self._generation:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(channel.closed), 2.0)
        self._child_gone(generation, f"exit code {code}")

    async def _pump(self, stream: asyncio.StreamReader, source: str, generation: int) -> None:
        # Output the child writes before (or instead of) its own capture: import errors,
        # interpreter crashes. Treated like the runner's own log lines.
        while True:
            line = await stream.readline()
            if not line:
                return
            self._runner_log(source, line.decode("utf-8", "replace"), generation)

    def _runner_log(self, source: str, data: str, generation: int) -> None:
        if generation == self._generation and self._state is RunnerState.STARTING:
            self.setup.logs.append(data)
        if self._on_runner_log is not None:
            self._on_runner_log(source, data)
        elif data.strip():
            log.info("%s", data.rstrip("\n"))

    def _child_gone(self, generation: int, reason: str) -> None:
        """The child exited, closed its socket or broke the protocol. Runs once per child."""
        if generation != self._generation or self._process is None:
            return
        self._generation += 1
        process, self._process = self._process, None
        if process.returncode is None:
            self._kill(process)
        if self._channel is not None and self._channel.transport is not None:
            self._channel.transport.close()
        self._channel = None
        intentional, self._intentional_kill = self._intentional_kill, False
        for hc in self._healthchecks.values():
            if not hc.done():
                hc.set_result({"ok": False, "error": WORKER_EXITED})
        self._healthchecks.clear()
        for inflight in list(self._inflight.values()):
            if inflight.cancel_escalated:
                self._finish(inflight, status="canceled", error=None)
            else:
                self._finish(inflight, status="failed", error=WORKER_EXITED)
        if self._closing or self._state is RunnerState.SETUP_FAILED:
            return
        log.warning("runner child for %s gone (%s)", self.spec.ref, reason)
        if not intentional:
            self._crashes_in_a_row += 1
            if self._crashes_in_a_row > self.max_restarts:
                self.setup.status = "failed"
                self._set_state(RunnerState.DEFUNCT)
                return
        self.restarts += 1
        # the first crash restarts at once; one that keeps crashing waits longer each time
        crashes = 0 if intentional else self._crashes_in_a_row
        delay = 0.0 if crashes <= 1 else self.restart_backoff * (2 ** (crashes - 2))
        self._set_state(RunnerState.STARTING)
        self._spawn(self._restart(min(delay, 30.0)))

    async def _restart(self, delay: float) -> None:
        if delay:
            await asyncio.sleep(delay)
        if self._closing:
            return
        try:
            await self.start()
        except OSError as exc:
            self.setup.logs.append(f"could not start the runner: {exc}\n")
            self.setup_error = str(exc)
            self._set_state(RunnerState.DEFUNCT)

    def kill(self) -> None:
        """Kill the child now (it is replaced like after a crash, without counting one)."""
        if self._process is not None:
            self._intentional_kill = True
            self._kill(self._process)

    # --- messages --------------------------------------------------------------------

    def _send(self, message: dict[str, Any]) -> bool:
        channel = self._channel
        if channel is None or channel.transport is None or channel.transport.is_closing():
            return False
        channel.transport.write(wire_frame(message))
        return True

    def _dispatch(self, generation: int, message: dict[str, Any]) -> None:
        if generation != self._generation:
            return
        kind = message["type"]
        pid = message.get("id")
        if pid is not None and kind in ("log", "output", "metric", "done"):
            inflight = self._inflight.get(pid)
            if inflight is None:
                return
            if kind == "done":
                self._finish(inflight, message=message)
            else:
                inflight.on_event(message)
        elif kind == "log":
            self._runner_log(message.get("source", "stdout"), message.get("data", ""), generation)
        elif kind == "ready":
            self.openapi = message.get("openapi")
            self.max_concurrency = max(1, int(message.get("max_concurrency") or 1))
            self.has_healthcheck = bool(message.get("has_healthcheck"))
            self.setup.status = "succeeded"
            self.setup.completed_at = now_iso()
            self.setup_error = None
            self._set_state(RunnerState.READY)
        elif kind == "setup_failed":
            self.setup_error = str(message.get("error") or "setup failed")
            self.setup.status = "failed"
            self.setup.completed_at = now_iso()
            if not self.setup.logs or self.setup_error not in self.setup.logs[-1]:
                self.setup.logs.append(self.setup_error.rstrip("\n") + "\n")
            self._set_state(RunnerState.SETUP_FAILED)
        elif kind == "healthcheck":
            future = self._healthchecks.pop(str(pid), None)
            if future is not None and not future.done():
                future.set_result(message)
        else:
            log.warning("runner sent an unknown message type %r", kind)

    def _finish(
        self,
        inflight: _InFlight,
        *,
        message: dict[str, Any] | None = None,
        status: str = "failed",
        error: str | None = None,
    ) -> None:
        # The slot is free before anyone hears of the result: a caller that answers its
        # client on ``done`` and gets the next request at once always finds it free.
        self._inflight.pop(inflight.id, None)
        if inflight.cancel_timer is not None:
            inflight.cancel_timer.cancel()
        if message is None:
            message = {
                "type": "done",
                "id": inflight.id,
                "status": status,
                "output": None,
                "error": error,
                "metrics": {},
            }
        elif inflight.cancel_escalated:
            message = {**message, "status": "canceled"}
        if message.get("status") != "failed" or message.get("error") != WORKER_EXITED:
            self._crashes_in_a_row = 0
        try:
            inflight.on_event(message)
        finally:
            if not inflight.done.done():
                inflight.done.set_result(message)

    # --- work ------------------------------------------------------------------------

    def acquire_slot(self) -> Slot | None:
        """Reserve a slot now, or None when the runner is not ready or all are taken."""
        if not self.accepting or self.busy_slots >= self.max_concurrency:
            return None
        self._reserved += 1
        return Slot(self)

    def is_running(self, prediction_id: str) -> bool:
        return prediction_id in self._inflight

    def predict(
        self,
        slot: Slot,
        prediction_id: str,
        input: Mapping[str, Any],
        *,
        context: Mapping[str, str] | None = None,
        on_event: EventCallback | None = None,
    ) -> asyncio.Future[dict[str, Any]]:
        """Start one prediction in a reserved slot.

        ``on_event`` gets ``started`` before this returns, once the prediction is
        written to the child (a free slot's child takes it at once), then the child's
        ``log``, ``output`` and ``metric`` messages as they arrive, and finally ``done``.
        The returned future resolves to the ``done`` message; a child that dies resolves
        it ``failed`` with :data:`WORKER_EXITED`.
        """
        slot._take()
        if prediction_id in self._inflight:
            raise RunnerBusy(f"prediction {prediction_id} is already running")
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        inflight = _InFlight(prediction_id, on_event or _ignore, future)
        self._inflight[prediction_id] = inflight
        try:
            sent = self.accepting and self._send(
                {
                    "type": "predict",
                    "id": prediction_id,
                    "input": dict(input),
                    "context": dict(context or {}),
                }
            )
        except Exception as exc:
            # An input the message cannot carry (a lone UTF-16 surrogate does not encode)
            # or a failed write: this prediction fails, and its slot is free again.
            log.warning("prediction %s could not be sent to its runner: %s", prediction_id, exc)
            self._finish(inflight, status="failed", error=handoff_error(exc))
            return future
        if not sent:
            self._finish(inflight, status="failed", error=WORKER_EXITED)
        else:
            inflight.on_event({"type": "started", "id": prediction_id})
        return future

    def cancel(self, prediction_id: str) -> bool:
        """Ask the child to cancel; kill and replace it if it does not stop in time.

        Returns False when the prediction is not running here.
        """
        inflight = self._inflight.get(prediction_id)
        if inflight is None:
            return False
        if inflight.cancel_timer is None:
            self._send({"type": "cancel", "id": prediction_id})
            loop = asyncio.get_running_loop()
            inflight.cancel_timer = loop.call_later(
                self.cancel_grace, self._escalate_cancel, prediction_id, self._generation
            )
        return True

    def _escalate_cancel(self, prediction_id: str, generation: int) -> None:
        inflight = self._inflight.get(prediction_id)
        if inflight is None or generation != self._generation:
            return
        log.warning(
            "prediction %s ignored its cancel for %.1f s: killing the runner",
            prediction_id,
            self.cancel_grace,
        )
        inflight.cancel_escalated = True
        self.kill()

    async def healthcheck(self) -> tuple[bool, str | None]:
        """Run the model's ``healthcheck()``; ``(ok, user_healthcheck_error)``.

        A child that does not answer at all within ``healthcheck_timeout`` for
        ``hung_after_missed_healthchecks`` checks in a row is hung: it is killed and
        replaced like a crashed one.
        """
        if not self.has_healthcheck or self._state is not RunnerState.READY:
            return True, None
        check_id = f"hc{next(self._ids)}"
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._healthchecks[check_id] = future
        generation = self._generation
        if not self._send({"type": "healthcheck", "id": check_id}):
            self._healthchecks.pop(check_id, None)
            return False, WORKER_EXITED
        try:
            reply = await asyncio.wait_for(future, self.healthcheck_timeout)
        except asyncio.TimeoutError:
            self._healthchecks.pop(check_id, None)
            self._missed_healthchecks += 1
            if (
                self._missed_healthchecks >= self.hung_after_missed_healthchecks
                and generation == self._generation
                and self._process is not None
            ):
                log.warning("runner child for %s is not answering: killing it", self.spec.ref)
                self._kill(self._process)
            return False, f"timed out after {HEALTHCHECK_TIMEOUT} seconds"
        self._missed_healthchecks = 0
        if reply.get("ok"):
            return True, None
        return False, str(reply.get("error") or "user-defined healthcheck returned False")


def _ignore(message: dict[str, Any]) -> None:
    del message
