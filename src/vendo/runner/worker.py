"""The serving loop of the child: setup, then predictions, over one socket.

Sync predictors run on the main thread, one at a time; a ``cancel`` makes the reader
thread send SIGUSR1 to the main thread, whose handler raises ``CancelationException``
(that interrupts ``time.sleep`` and other blocking calls). Async predictors run as tasks
on one event loop, up to ``max_concurrency`` at once; ``cancel`` cancels the task.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import io
import queue
import signal
import sys
import threading
import time
import traceback
from typing import Any, Callable, Dict, List, Optional, Set, Tuple

from vendo.schema.encoding import encode_output
from vendo.sdk.exceptions import CancelationException
from vendo.sdk.scope import Scope, reset_scope, set_scope

from .capture import Capture, RoutedStream, prediction_id
from .channel import Channel, error_text
from .inputs import InputPreparer
from .loader import Bound, Loaded
from .outputs import OutputFolder
from .protocol import FrameDecoder, ProtocolError

__all__ = ["HEALTHCHECK_TIMEOUT", "Worker"]

HEALTHCHECK_TIMEOUT = 5.0
# Below glibc's mmap threshold, so each recv's buffer comes from the heap.
_RECV_SIZE = 65536


class Worker:
    def __init__(
        self,
        channel: Channel,
        capture: Capture,
        loaded: Loaded,
        bound: Bound,
        max_concurrency: int,
        loop: Optional[asyncio.AbstractEventLoop] = None,
    ) -> None:
        self.channel = channel
        self.capture = capture
        self.loaded = loaded
        self.info = loaded.info
        self.bound = bound
        self.max_concurrency = max_concurrency
        self.prepare = InputPreparer(loaded.info)
        # file outputs without a path on disk; removed when the child exits
        self.out_dir = OutputFolder()
        channel.before_exit.append(self.out_dir.remove)
        # ids received and not finished yet; a cancel for any other id is ignored, so a
        # late cancel cannot hit a later prediction that reuses the id
        self.active: Set[str] = set()
        self.canceled: Set[str] = set()
        self._ids_lock = threading.Lock()
        # sync mode
        # the reader thread's hand-off to the main thread, once per prediction:
        # SimpleQueue is C, without the Python-level Condition and locks of Queue
        self.queue: queue.SimpleQueue[Optional[Dict[str, Any]]] = queue.SimpleQueue()
        self.current: Optional[str] = None
        self.armed = False
        # async mode
        self.loop = loop
        self.tasks: Dict[str, asyncio.Task[None]] = {}
        self.shutting_down = False

    # -- messages in -------------------------------------------------------------------

    def read_loop(self) -> None:
        """Reader thread: dispatch every parent message.

        One ``recv`` takes whatever has arrived, often several frames under load, and
        the event loop (async predictors) is woken once for all of them. The thread stays
        even for async predictors: a model that blocks its event loop must still get
        its healthchecks answered and its cancels recorded.
        """
        decoder = FrameDecoder()
        sock = self.channel.sock
        while True:
            try:
                data = sock.recv(_RECV_SIZE)
            except OSError:
                data = b""
            if not data:
                # The parent closed the socket: it will not read any result.
                self.channel.exit(0)
            try:
                messages = decoder.feed(data)
            except ProtocolError as exc:
                print(f"vendo runner: bad message from parent: {exc}", file=sys.stderr)
                self.channel.exit(0)
            on_loop: List[Callable[[], None]] = []
            for message in messages:
                self._dispatch(message, on_loop)
            if on_loop and self.loop is not None:
                self.loop.call_soon_threadsafe(_run_all, on_loop)

    def _dispatch(self, message: Dict[str, Any], on_loop: List[Callable[[], None]]) -> None:
        kind = message.get("type")
        if kind == "predict":
            self._on_predict(message, on_loop)
        elif kind == "cancel":
            self._on_cancel(str(message.get("id")), on_loop)
        elif kind == "healthcheck":
            threading.Thread(
                target=self._healthcheck, args=(message.get("id"),), daemon=True
            ).start()
        elif kind == "shutdown":
            self._on_shutdown(on_loop)

    def _on_predict(self, message: Dict[str, Any], on_loop: List[Callable[[], None]]) -> None:
        with self._ids_lock:
            self.active.add(str(message.get("id")))
        if self.loop is not None:
            on_loop.append(functools.partial(self._start_task, message))
        else:
            self.queue.put(message)

    def _on_cancel(self, pid: str, on_loop: List[Callable[[], None]]) -> None:
        with self._ids_lock:
            if pid not in self.active:
                return
            self.canceled.add(pid)
        if self.loop is not None:
            # after a predict for the same id read in the same batch, as in the stream
            on_loop.append(functools.partial(self._cancel_task, pid))
        elif self.current == pid:
            signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGUSR1)

    def _on_shutdown(self, on_loop: List[Callable[[], None]]) -> None:
        if self.loop is not None:
            on_loop.append(self._shutdown_async)
        else:
            self.queue.put(None)

    # -- shared pieces -------------------------------------------------------------------

    def _send(self, message: Dict[str, Any]) -> None:
        self.channel.send(message)

    def _warn_ignored(self, pid: str, message: Dict[str, Any]) -> None:
        # First in the prediction's logs, before anything the model prints.
        payload = message.get("input")
        warning = self.prepare.ignored(payload) if isinstance(payload, dict) else ""
        if warning:
            self._send({"type": "log", "id": pid, "source": "stderr", "data": warning})

    def _scope(self, pid: str, message: Dict[str, Any]) -> Scope:
        def sink(name: str, value: Any, mode: str) -> None:
            self._send({"type": "metric", "id": pid, "name": name, "value": value, "mode": mode})

        context = message.get("context") or {}
        return Scope({str(k): str(v) for k, v in context.items()}, sink)

    def _finish(
        self,
        pid: str,
        status: str,
        output: Any,
        error: Optional[str],
        scope: Scope,
        started: float,
        opened: List[io.IOBase],
    ) -> None:
        predict_time = time.perf_counter() - started
        for handle in opened:
            handle.close()
        if pid in self.canceled:  # canceled even when the model swallowed the exception
            status, output, error = "canceled", None, None
        if self.max_concurrency == 1:
            self.capture.drain()
        for stream in (sys.stdout, sys.stderr):
            if isinstance(stream, RoutedStream):
                stream.flush_prediction(pid)
        metrics = scope.metrics.snapshot()
        metrics["predict_time"] = predict_time
        with self._ids_lock:
            self.canceled.discard(pid)
            self.active.discard(pid)
        self._send(
            {
                "type": "done",
                "id": pid,
                "status": status,
                "output": output,
                "error": error,
                "metrics": metrics,
            }
        )

    def _failure(self, exc: BaseException) -> str:
        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
        return error_text(exc)

    # -- sync mode -------------------------------------------------------------------------

    def _on_signal(self, signum: int, frame: Any) -> None:
        del signum, frame
        if self.armed and self.current in self.canceled:
            self.armed = False
            # held back while a frame is being sent, so that no half frame is left
            self.channel.interrupt(CancelationException())

    def serve_sync(self) -> None:
        signal.signal(signal.SIGUSR1, self._on_signal)
        while True:
            message = self.queue.get()
            if message is None:
                return
            self._predict_sync(message)

    def _predict_sync(self, message: Dict[str, Any]) -> None:
        pid = str(message.get("id"))
        scope = self._scope(pid, message)
        started = time.perf_counter()
        opened: List[io.IOBase] = []
        status, output, error = "failed", None, None
        self.current = pid
        self.capture.fd_prediction = pid
        id_token = prediction_id.set(pid)
        scope_token = set_scope(scope)
        self._warn_ignored(pid, message)
        try:
            try:
                kwargs, opened = self.prepare(message.get("input") or {})
                # Arm first, then look: a cancel arriving in between either is seen
                # here or finds the handler armed (the reader adds, then signals).
                self.armed = True
                if pid in self.canceled:
                    raise CancelationException()
                result = self.bound.run(**kwargs)
                if self.info.output.iterator:
                    for index, item in enumerate(result):
                        value = encode_output(item, self.out_dir)
                        self._send({"type": "output", "id": pid, "index": index, "value": value})
                else:
                    output = encode_output(result, self.out_dir)
                status = "succeeded"
            finally:
                self.armed = False
        except CancelationException:
            status = "canceled"
        except BaseException as exc:  # SystemExit too: it fails this prediction only
            error = self._failure(exc)
        finally:
            reset_scope(scope_token)
            prediction_id.reset(id_token)
            self.current = None
        self._finish(pid, status, output, error, scope, started, opened)
        self.capture.fd_prediction = None

    # -- async mode ------------------------------------------------------------------------

    def serve_async(self, loop: asyncio.AbstractEventLoop) -> None:
        loop.run_forever()

    def _start_task(self, message: Dict[str, Any]) -> None:
        pid = str(message.get("id"))
        self.tasks[pid] = asyncio.ensure_future(self._predict_async(pid, message))

    def _cancel_task(self, pid: str) -> None:
        task = self.tasks.get(pid)
        if task is not None and self.loop is not None:
            # A task canceled before its first step never runs its body, so it would
            # send no "done". Its first step is already queued: cancel after it (the
            # body also checks self.canceled, and cancel() of a finished task is a no-op).
            self.loop.call_soon(task.cancel)

    def _shutdown_async(self) -> None:
        self.shutting_down = True
        if not self.tasks and self.loop is not None:
            self.loop.stop()

    async def _predict_async(self, pid: str, message: Dict[str, Any]) -> None:
        scope = self._scope(pid, message)
        started = time.perf_counter()
        opened: List[io.IOBase] = []
        status, output, error = "failed", None, None
        prediction_id.set(pid)
        set_scope(scope)
        if self.max_concurrency == 1:
            self.capture.fd_prediction = pid
        self._warn_ignored(pid, message)
        try:
            kwargs, opened = self.prepare(message.get("input") or {})
            if pid in self.canceled:
                raise asyncio.CancelledError()
            result = self.bound.run(**kwargs)
            if self.info.output.iterator:
                index = 0
                if inspect.isasyncgen(result) or hasattr(result, "__anext__"):
                    async for item in result:
                        self._send_item(pid, index, item)
                        index += 1
                else:
                    if inspect.isawaitable(result):
                        result = await result
                    for item in result:
                        self._send_item(pid, index, item)
                        index += 1
            else:
                if inspect.isawaitable(result):
                    result = await result
                output = encode_output(result, self.out_dir)
            status = "succeeded"
        except asyncio.CancelledError:
            status = "canceled"
        except BaseException as exc:  # SystemExit would otherwise stop the whole loop
            error = self._failure(exc)
        self._finish(pid, status, output, error, scope, started, opened)
        if self.max_concurrency == 1:
            self.capture.fd_prediction = None
        self.tasks.pop(pid, None)
        if self.shutting_down and not self.tasks and self.loop is not None:
            self.loop.stop()

    def _send_item(self, pid: str, index: int, item: Any) -> None:
        value = encode_output(item, self.out_dir)
        self._send({"type": "output", "id": pid, "index": index, "value": value})

    # -- healthcheck -----------------------------------------------------------------------

    def _healthcheck(self, hid: Any) -> None:
        ok, error = self.run_healthcheck()
        self._send({"type": "healthcheck", "id": hid, "ok": ok, "error": error})

    def run_healthcheck(self) -> Tuple[bool, Optional[str]]:
        check = self.bound.healthcheck
        if check is None:
            return True, None
        result: Dict[str, Any] = {}

        def call() -> None:
            try:
                value = check()
                if inspect.isawaitable(value):
                    if self.loop is not None:
                        future = asyncio.run_coroutine_threadsafe(_awaited(value), self.loop)
                        value = future.result(HEALTHCHECK_TIMEOUT + 1)
                    else:
                        value = asyncio.run(_awaited(value))
                result["value"] = value
            except BaseException as exc:
                result["error"] = exc

        thread = threading.Thread(target=call, name="vendo-healthcheck", daemon=True)
        thread.start()
        thread.join(HEALTHCHECK_TIMEOUT)
        if thread.is_alive():
            return False, f"timed out after {HEALTHCHECK_TIMEOUT} seconds"
        if "error" in result:
            return False, f"Healthcheck error: {error_text(result['error'])}"
        if result.get("value") is False:
            return False, "user-defined healthcheck returned False"
        return True, None


async def _awaited(value: Any) -> Any:
    return await value


def _run_all(callbacks: List[Callable[[], None]]) -> None:
    # one failing callback must not drop the messages after it
    for callback in callbacks:
        try:
            callback()
        except Exception:
            traceback.print_exc()
