"""The serving loop of the child: setup, then predictions, over one socket.

Sync predictors run on the main thread, one at a time; a ``cancel`` makes the reader
thread send SIGUSR1 to the main thread, whose handler raises ``CancelationException``
(that interrupts ``time.sleep`` and other blocking calls). Async predictors run as tasks
on one event loop, up to ``max_concurrency`` at once; ``cancel`` cancels the task.
"""

from __future__ import annotations

import asyncio
import inspect
import io
import os
import queue
import signal
import socket
import sys
import tempfile
import threading
import time
import traceback
from typing import Any, Dict, List, Optional, Set, Tuple

from vendo.schema.encoding import encode_output
from vendo.schema.openapi import openapi_document
from vendo.schema.records import FILE, PATH, LoadError
from vendo.sdk.exceptions import CancelationException
from vendo.sdk.scope import Scope, reset_scope, set_scope
from vendo.sdk.types import Path, URLPath

from .capture import Capture, RoutedStream, prediction_id
from .inputs import InputPreparer
from .loader import Bound, Loaded, load, register_cog
from .protocol import encode, read_message

__all__ = ["HEALTHCHECK_TIMEOUT", "Worker", "error_text", "serve"]

HEALTHCHECK_TIMEOUT = 5.0
# After COG_SETUP_TIMEOUT, setup that ignores the timeout signal gets this long.
_SETUP_GRACE = 5.0
_INTERRUPTS = {signal.SIGUSR1, signal.SIGALRM}


def error_text(exc: BaseException) -> str:
    """``"<Type>: <message>"``, the error string of a failed prediction."""
    message = str(exc)
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


class _SetupTimeout(BaseException):
    pass


class Channel:
    """The child's end of the socket: whole frames, sent from any thread."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._lock = threading.Lock()

    def send(self, message: Dict[str, Any]) -> None:
        data = encode(message)
        # On the main thread a cancel or setup-timeout signal may arrive mid-send; its
        # handler raises, which would leave half a frame on the socket. Hold the signals
        # until the frame is out; the handler then runs right after.
        on_main = threading.current_thread() is threading.main_thread()
        if on_main:
            signal.pthread_sigmask(signal.SIG_BLOCK, _INTERRUPTS)
        try:
            with self._lock:
                self.sock.sendall(data)
        except OSError:
            # The parent is gone: nobody is left to report to.
            os._exit(1)
        finally:
            if on_main:
                signal.pthread_sigmask(signal.SIG_UNBLOCK, _INTERRUPTS)


def _max_concurrency(loaded: Loaded, cli_value: Optional[int]) -> int:
    env = os.environ.get("COG_MAX_CONCURRENCY", "").strip()
    if env:
        try:
            value = int(env)
        except ValueError:
            raise LoadError(f"COG_MAX_CONCURRENCY must be an integer, got {env!r}") from None
    elif cli_value is not None:
        value = cli_value
    else:
        value = loaded.info.max_concurrency or 1
    if value < 1:
        raise LoadError(f"max concurrency must be at least 1, got {value}")
    if value > 1 and not loaded.info.is_async:
        raise LoadError(
            f"max concurrency is {value}, but {loaded.method}() is synchronous; "
            "only async predictors can run more than one prediction at once"
        )
    return value


def _setup_timeout() -> Optional[float]:
    raw = os.environ.get("COG_SETUP_TIMEOUT", "").strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise LoadError(f"COG_SETUP_TIMEOUT must be a number of seconds, got {raw!r}") from None
    return value if value > 0 else None


def _weights(loaded: Loaded) -> Any:
    raw = os.environ.get("COG_WEIGHTS") or None
    weights_type = loaded.info.weights_type
    if raw is None or weights_type is None:
        return raw
    if raw.startswith(("http://", "https://")):
        path: Path = URLPath.from_url(raw).convert()
    else:
        path = Path(raw)
    if weights_type.kind == FILE:
        return open(path, "rb")  # noqa: SIM115 - handed to the model's setup
    assert weights_type.kind == PATH
    return path


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
        self.out_dir = tempfile.mkdtemp(prefix="vendo-output-")
        # ids received and not finished yet; a cancel for any other id is ignored, so a
        # late cancel cannot hit a later prediction that reuses the id
        self.active: Set[str] = set()
        self.canceled: Set[str] = set()
        self._ids_lock = threading.Lock()
        # sync mode
        self.queue: queue.Queue[Optional[Dict[str, Any]]] = queue.Queue()
        self.current: Optional[str] = None
        self.armed = False
        # async mode
        self.loop = loop
        self.tasks: Dict[str, asyncio.Task[None]] = {}
        self.shutting_down = False

    # -- messages in -------------------------------------------------------------------

    def read_loop(self) -> None:
        """Reader thread: dispatch every parent message."""
        while True:
            try:
                message = read_message(self.channel.sock)
            except Exception as exc:
                print(f"vendo runner: bad message from parent: {exc}", file=sys.stderr)
                message = None
            if message is None:
                # The parent closed the socket: it will not read any result.
                os._exit(0)
            kind = message.get("type")
            if kind == "predict":
                self._on_predict(message)
            elif kind == "cancel":
                self._on_cancel(str(message.get("id")))
            elif kind == "healthcheck":
                threading.Thread(
                    target=self._healthcheck, args=(message.get("id"),), daemon=True
                ).start()
            elif kind == "shutdown":
                self._on_shutdown()

    def _on_predict(self, message: Dict[str, Any]) -> None:
        with self._ids_lock:
            self.active.add(str(message.get("id")))
        if self.loop is not None:
            self.loop.call_soon_threadsafe(self._start_task, message)
        else:
            self.queue.put(message)

    def _on_cancel(self, pid: str) -> None:
        with self._ids_lock:
            if pid not in self.active:
                return
            self.canceled.add(pid)
        if self.loop is not None:
            self.loop.call_soon_threadsafe(self._cancel_task, pid)
        elif self.current == pid:
            signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGUSR1)

    def _on_shutdown(self) -> None:
        if self.loop is not None:
            self.loop.call_soon_threadsafe(self._shutdown_async)
        else:
            self.queue.put(None)

    # -- shared pieces -------------------------------------------------------------------

    def _send(self, message: Dict[str, Any]) -> None:
        self.channel.send(message)

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
            raise CancelationException()

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
        self._send({"type": "started", "id": pid})
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
        self._send({"type": "started", "id": pid})
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


def _call_setup(bound: Bound, loaded: Loaded, loop: Optional[asyncio.AbstractEventLoop]) -> None:
    setup = bound.setup
    if setup is None:
        return
    kwargs = {"weights": _weights(loaded)} if loaded.info.setup_weights else {}
    timeout = _setup_timeout()
    if inspect.iscoroutinefunction(setup):
        coro = asyncio.wait_for(setup(**kwargs), timeout)
        try:
            result = loop.run_until_complete(coro) if loop is not None else asyncio.run(coro)
        except asyncio.TimeoutError:
            raise TimeoutError(f"setup() timed out after {timeout} seconds") from None
    else:
        previous = None
        if timeout is not None:

            def on_alarm(signum: int, frame: Any) -> None:
                raise _SetupTimeout()

            previous = signal.signal(signal.SIGALRM, on_alarm)
            signal.setitimer(signal.ITIMER_REAL, timeout)
        started = time.monotonic()
        try:
            try:
                result = setup(**kwargs)
            finally:
                if timeout is not None:
                    signal.setitimer(signal.ITIMER_REAL, 0)
                    signal.signal(signal.SIGALRM, previous)
        except _SetupTimeout:
            raise TimeoutError(f"setup() timed out after {timeout} seconds") from None
        if timeout is not None and time.monotonic() - started > timeout:
            raise TimeoutError(f"setup() timed out after {timeout} seconds")
    if result is not None:
        raise LoadError(f"setup() must return None, got {type(result).__name__}")


def _watchdog(channel: Channel, capture: Capture, done: threading.Event) -> None:
    timeout = _setup_timeout()
    if timeout is None:
        return

    def watch() -> None:
        if done.wait(timeout + _SETUP_GRACE):
            return
        capture.drain(0.5)
        channel.send(
            {
                "type": "setup_failed",
                "error": f"TimeoutError: setup() timed out after {timeout} seconds",
            }
        )
        os._exit(1)

    threading.Thread(target=watch, name="vendo-setup-watchdog", daemon=True).start()


def serve(project: str, ref: str, mode: str, cli_concurrency: Optional[int], fd: int) -> int:
    sock = socket.socket(fileno=fd)
    channel = Channel(sock)

    def log_sink(pid: Optional[str], source: str, data: str) -> None:
        channel.send({"type": "log", "id": pid, "source": source, "data": data})

    capture = Capture(log_sink)
    capture.start()
    setup_done = threading.Event()
    loop: Optional[asyncio.AbstractEventLoop] = None
    try:
        os.chdir(project)
        sys.path.insert(0, os.getcwd())
        register_cog()
        loaded = load(os.getcwd(), ref, mode)
        for warning in loaded.info.warnings:
            print(f"warning: {warning}", file=sys.stderr)
        max_concurrency = _max_concurrency(loaded, cli_concurrency)
        if mode == "train":
            openapi = openapi_document(None, loaded.info)
        else:
            openapi = openapi_document(loaded.info)
        bound = loaded.instantiate()
        if loaded.info.is_async:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
        _watchdog(channel, capture, setup_done)
        _call_setup(bound, loaded, loop)
        setup_done.set()
    except BaseException as exc:
        setup_done.set()
        if not isinstance(exc, LoadError):
            traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
        else:
            print(f"error: {exc}", file=sys.stderr)
        capture.drain()
        channel.send({"type": "setup_failed", "error": error_text(exc)})
        # Threads the model started during setup must not keep a failed child alive.
        os._exit(1)
    worker = Worker(channel, capture, loaded, bound, max_concurrency, loop)
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, RoutedStream):
            stream.route_by_context = max_concurrency > 1
    capture.drain()
    channel.send(
        {
            "type": "ready",
            "openapi": openapi,
            "max_concurrency": max_concurrency,
            "has_healthcheck": bound.healthcheck is not None,
        }
    )
    reader = threading.Thread(target=worker.read_loop, name="vendo-reader", daemon=True)
    reader.start()
    if loop is not None:
        worker.serve_async(loop)
    else:
        worker.serve_sync()
    capture.drain()
    return 0
