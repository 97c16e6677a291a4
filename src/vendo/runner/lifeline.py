"""A runner child never outlives the process that started it.

The parent starts each child as the leader of a new process group, so that one kill
reaches whatever the model spawned. A parent that dies (SIGKILL, out of memory, a crash)
kills nobody, so the child watches its parent and, once it is gone, kills its own group
(itself, and the model's helper processes with it).

How the child notices:

- a thread blocked on a pidfd of the parent (Linux 5.3+, Python 3.9+) wakes the moment
  the parent exits; elsewhere the thread polls the parent twice a second;
- the protocol socket reaches EOF, or a send to it fails (:class:`~.channel.Channel`
  ends through :func:`leave` too).

``prctl(PR_SET_PDEATHSIG)`` was weighed and left out: the signal comes when the parent
*thread* that forked the child ends, not the parent process, and a signal that kills the
child outright (the only kind that works while a model holds the GIL in native code)
leaves the group's other members running.

The parent's PID comes from ``VENDO_RUNNER_PARENT`` (set by the scheduler): a parent
that died before the child got here is then seen as gone, not mistaken for init.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import threading
import time
from typing import Callable, NoReturn, Optional

from .protocol import PARENT_ENV

__all__ = ["leave", "watch_parent"]

_POLL_SECONDS = 0.5


def leave(code: int) -> NoReturn:
    """Exit now; as a process-group leader, take the whole group along (SIGKILL)."""
    with contextlib.suppress(OSError):
        if os.getpgrp() == os.getpid():
            # A child that does not lead its group (started by hand, or by a test that
            # shares our group) must not kill the group it joined.
            os.killpg(os.getpid(), signal.SIGKILL)
    os._exit(code)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, under another user
    return True


def _pidfd(pid: int) -> Optional[int]:
    opener = getattr(os, "pidfd_open", None)  # Linux, Python 3.9+
    if opener is None:
        return None
    try:
        return int(opener(pid))
    except OSError:
        return None  # an older kernel, or the parent is already gone (checked next)


def _expected_parent() -> int:
    value = os.environ.pop(PARENT_ENV, "")  # the model's own children need not see it
    return int(value) if value.isdigit() else os.getppid()


def watch_parent(on_gone: Callable[[], None] = lambda: leave(1)) -> None:
    """Call ``on_gone`` (by default :func:`leave`) once the parent has exited, from a
    daemon thread; at once, on this thread, if it already has."""
    parent = _expected_parent()
    first_ppid = os.getppid()
    fd = _pidfd(parent)
    if parent <= 1 or not _alive(parent):
        on_gone()
        return

    def wait_pidfd(fd: int) -> None:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        while not poller.poll():
            pass
        on_gone()

    def poll_parent() -> None:
        # A parent that dies orphans us (another parent PID); one we were not forked by
        # directly (a launcher in between) is watched by its PID.
        while os.getppid() == first_ppid and _alive(parent):
            time.sleep(_POLL_SECONDS)
        on_gone()

    if fd is not None:
        thread = threading.Thread(target=wait_pidfd, args=(fd,), name="vendo-lifeline")
    else:
        thread = threading.Thread(target=poll_parent, name="vendo-lifeline")
    thread.daemon = True
    thread.start()
