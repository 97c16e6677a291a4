"""Capture the child's stdout/stderr at the file-descriptor level.

fds 1 and 2 are pointed at pipes, so C extensions and subprocesses are captured too.
A reader thread per pipe turns bytes into ``log`` messages. ``sys.stdout``/``sys.stderr``
become :class:`RoutedStream` objects: with more than one slot, Python-level writes go
straight to the prediction named by a context variable, and everything written to the
fds goes to the runner log (``id`` null); with one slot, fd output is tagged with the
running prediction.
"""

from __future__ import annotations

import codecs
import contextlib
import contextvars
import fcntl
import io
import os
import select
import struct
import sys
import termios
import threading
from typing import Any, Callable, Dict, List, Optional

__all__ = ["Capture", "RoutedStream", "prediction_id"]

LogSink = Callable[[Optional[str], str, str], None]

# Written into a pipe to learn when everything before it has been read.
_MARKER = b"\x00\x01vendo-drain\x01\x00"

prediction_id: contextvars.ContextVar[Optional[str]] = contextvars.ContextVar(
    "vendo_prediction_id", default=None
)


class _PipeReader(threading.Thread):
    def __init__(self, fd: int, source: str, capture: Capture) -> None:
        super().__init__(name=f"vendo-capture-{source}", daemon=True)
        self.fd = fd
        self.source = source
        self.capture = capture
        self.seen = 0
        self.pending = b""
        self.cond = threading.Condition()

    def run(self) -> None:
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        poller = select.poll()
        poller.register(self.fd, select.POLLIN)
        while True:
            # Wait outside the lock; read and emit under it. drain() holding the lock
            # then finds every byte written so far still in the pipe, held here as a
            # possible start of a marker, or already sent as a log message.
            poller.poll()
            with self.cond:
                try:
                    chunk = os.read(self.fd, 65536)
                except OSError:
                    return
                if not chunk:
                    return
                data = self.pending + chunk
                self.pending = b""
                markers = 0
                while _MARKER in data:
                    before, _, data = data.partition(_MARKER)
                    self._emit(decoder.decode(before))
                    markers += 1
                # keep a tail that might be the start of a marker split across reads
                for size in range(min(len(_MARKER) - 1, len(data)), 0, -1):
                    if _MARKER.startswith(data[-size:]):
                        self.pending, data = data[-size:], data[:-size]
                        break
                self._emit(decoder.decode(data))
                if markers:
                    self.seen += markers
                    self.cond.notify_all()

    def idle(self, timeout: float) -> bool:
        """True when every byte written so far has been sent as a log message.

        The lock is held by the reader only while it turns a chunk into messages; a
        reader stuck in a send (the parent not reading) makes this False after
        ``timeout``, and the caller's marker wait is bounded too.
        """
        if not self.cond.acquire(timeout=timeout):
            return False
        try:
            if self.pending:
                return False
            try:
                raw = fcntl.ioctl(self.fd, termios.FIONREAD, b"\0\0\0\0")
            except OSError:
                return False
            return bool(struct.unpack("i", raw)[0] == 0)
        finally:
            self.cond.release()

    def wait_seen(self, count: int, timeout: float) -> None:
        with self.cond:
            self.cond.wait_for(lambda: self.seen >= count, timeout)

    def _emit(self, text: str) -> None:
        if text:
            self.capture.emit(self.source, text)


class Capture:
    """Owns the pipes behind fds 1 and 2 and the threads that read them."""

    def __init__(self, sink: LogSink) -> None:
        self.sink = sink
        self.fd_prediction: Optional[str] = None
        self._readers: Dict[int, _PipeReader] = {}
        self._lock = threading.Lock()
        self._written: Dict[int, int] = {}

    def start(self) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        for fd, source in ((1, "stdout"), (2, "stderr")):
            read_end, write_end = os.pipe()
            os.dup2(write_end, fd)
            os.close(write_end)
            reader = _PipeReader(read_end, source, self)
            self._readers[fd] = reader
            self._written[fd] = 0
            reader.start()
        sys.stdout = RoutedStream(1, "stdout", self)
        sys.stderr = RoutedStream(2, "stderr", self)

    def emit(self, source: str, text: str) -> None:
        self.sink(self.fd_prediction, source, text)

    def drain(self, timeout: float = 2.0) -> None:
        """Wait until every byte written to fds 1 and 2 so far has become a log message.

        A pipe with nothing left to read is skipped (the common case: a prediction that
        printed nothing, or whose output the reader has already sent); otherwise a
        marker goes through the pipe and the reader reports when it has reached it.
        """
        for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
            with contextlib.suppress(Exception):
                if stream is not None:
                    stream.flush()
        for fd, reader in self._readers.items():
            if reader.idle(timeout):
                continue
            with self._lock:
                self._written[fd] += 1
                target = self._written[fd]
            try:
                os.write(fd, _MARKER)
            except OSError:
                continue
            reader.wait_seen(target, timeout)


class RoutedStream(io.TextIOBase):
    """``sys.stdout``/``sys.stderr`` while the runner serves."""

    def __init__(self, fd: int, source: str, capture: Capture) -> None:
        super().__init__()
        self._fd = fd
        self._source = source
        self._capture = capture
        self.route_by_context = False
        self._buffers: Dict[str, List[str]] = {}
        self._lock = threading.Lock()
        self.buffer = open(fd, "wb", buffering=0, closefd=False)  # noqa: SIM115

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return "utf-8"

    @property
    def errors(self) -> Optional[str]:  # type: ignore[override]
        return "replace"

    def reconfigure(self, **options: Any) -> None:
        """Accepted and ignored: the runner decides how output is encoded and buffered."""
        del options

    def fileno(self) -> int:
        return self._fd

    def isatty(self) -> bool:
        return False

    def writable(self) -> bool:
        return True

    def write(self, text: Any) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        pid = prediction_id.get() if self.route_by_context else None
        if pid is None:
            data = text.encode("utf-8", "replace")
            while data:
                written = os.write(self._fd, data)
                data = data[written:]
            return len(text)
        with self._lock:
            parts = self._buffers.setdefault(pid, [])
            parts.append(text)
            if "\n" not in text:
                return len(text)
            joined = "".join(parts)
            head, _, tail = joined.rpartition("\n")
            self._buffers[pid] = [tail] if tail else []
        self._capture.sink(pid, self._source, head + "\n")
        return len(text)

    def flush(self) -> None:
        pid = prediction_id.get() if self.route_by_context else None
        if pid is not None:
            self.flush_prediction(pid)

    def flush_prediction(self, pid: str) -> None:
        with self._lock:
            rest = "".join(self._buffers.pop(pid, []))
        if rest:
            self._capture.sink(pid, self._source, rest)
