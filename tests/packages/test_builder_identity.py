"""Which builds left ``building`` are interrupted: those of a process of this host
that is gone, including a predecessor that had this very pid (PID 1 in a container)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

from vendo.api.v1.builds import BUILDER, _process_gone


def test_a_build_of_a_gone_process_of_this_host_is_interrupted() -> None:
    host = socket.gethostname()
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert _process_gone(f"{host}:{child.pid}:0000")  # exited
    assert _process_gone(f"{host}:{os.getpid()}:0000")  # same pid, earlier process
    assert not _process_gone(BUILDER)  # this process: still building
    assert not _process_gone(f"{host}:{os.getppid()}:0000")  # alive
    assert not _process_gone(f"another-host-{host}:{child.pid}:0000")  # not ours to judge
    assert not _process_gone("")
