"""The child's end of the protocol socket, and the error strings it reports."""

from __future__ import annotations

import contextlib
import socket
import threading
from typing import Any, Callable, Dict, List, NoReturn, Optional

from .lifeline import leave
from .protocol import encode

__all__ = ["Channel", "error_text"]


def error_text(exc: BaseException) -> str:
    """``"<Type>: <message>"``, the error string of a failed prediction."""
    message = str(exc)
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


class Channel:
    """The child's end of the socket: whole frames, sent from any thread.

    Sync predictors are canceled by a signal whose handler raises on the main thread. A
    raise in the middle of ``sendall`` would leave half a frame on the socket, so such
    handlers call :meth:`interrupt`, which holds the exception back while the main thread
    is sending and raises it right after the frame is out. That costs two attribute
    writes per frame, where blocking the signals would cost two system calls. With
    ``guard_main`` off (async predictors, which are canceled without signals) the main
    thread sends like any other.
    """

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.guard_main = True
        # Run before the child exits because the parent is gone (socket closed or broken).
        self.before_exit: List[Callable[[], None]] = []
        self._lock = threading.Lock()
        self._main_ident = threading.main_thread().ident
        # Both only touched on the main thread, by send() and by signal handlers, which
        # Python runs on the main thread between bytecodes: no lock needed.
        self._main_sending = False
        self._held: Optional[BaseException] = None

    def send(self, message: Dict[str, Any]) -> None:
        data = encode(message)
        if not (self.guard_main and threading.get_ident() == self._main_ident):
            self._sendall(data)
            return
        self._main_sending = True
        try:
            self._sendall(data)
        finally:
            self._main_sending = False
        held = self._held
        if held is not None:
            self._held = None
            raise held

    def interrupt(self, exc: BaseException) -> None:
        """For signal handlers: raise ``exc`` now, or right after the frame being sent."""
        if self._main_sending:
            self._held = exc
            return
        raise exc

    def exit(self, code: int) -> NoReturn:
        """Leave at once (threads the model started must not keep the child alive), and
        take the processes it started along (see :func:`.lifeline.leave`)."""
        for callback in self.before_exit:
            # exiting anyway, and nobody is left to tell
            with contextlib.suppress(Exception):
                callback()
        leave(code)

    def _sendall(self, data: bytes) -> None:
        try:
            with self._lock:
                self.sock.sendall(data)
        except OSError:
            # The parent is gone: nobody is left to report to.
            self.exit(1)
