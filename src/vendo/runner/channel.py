"""The child's end of the protocol socket, and the error strings it reports."""

from __future__ import annotations

import os
import signal
import socket
import threading
from typing import Any, Dict

from .protocol import encode

__all__ = ["INTERRUPTS", "Channel", "error_text"]

# Signals whose handlers raise into the main thread (cancel, setup timeout).
INTERRUPTS = {signal.SIGUSR1, signal.SIGALRM}


def error_text(exc: BaseException) -> str:
    """``"<Type>: <message>"``, the error string of a failed prediction."""
    message = str(exc)
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


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
            signal.pthread_sigmask(signal.SIG_BLOCK, INTERRUPTS)
        try:
            with self._lock:
                self.sock.sendall(data)
        except OSError:
            # The parent is gone: nobody is left to report to.
            os._exit(1)
        finally:
            if on_main:
                signal.pthread_sigmask(signal.SIG_UNBLOCK, INTERRUPTS)
