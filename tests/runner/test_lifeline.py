"""vendo.runner.lifeline: a child ends itself, and the processes it started, once the
process it must not outlive is gone (by pidfd where there is one, else by polling)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from support import is_running, wait_gone

from .driver import SRC

# The child: watches its parent, starts a helper, reports both PIDs, then waits.
CHILD = textwrap.dedent(
    """
    import os, subprocess, sys, time
    if os.environ.get("NO_PIDFD") and hasattr(os, "pidfd_open"):
        del os.pidfd_open  # the fallback of Python 3.8 and older kernels: polling
    from vendo.runner.lifeline import watch_parent
    watch_parent()
    helper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
    print(os.getpid(), helper.pid, flush=True)
    time.sleep(300)
    """
)

# The parent: starts the child (in its own process group unless told not to), waits.
PARENT = textwrap.dedent(
    """
    import os, subprocess, sys
    env = dict(os.environ, VENDO_RUNNER_PARENT=str(os.getpid()))
    subprocess.Popen([sys.executable, "-c", sys.argv[1]], env=env,
                     start_new_session=sys.argv[2] == "group")
    import time; time.sleep(300)
    """
)


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(SRC), **extra}


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
@pytest.mark.parametrize("watch", ["pidfd", "poll"])
def test_child_and_its_group_die_with_the_parent(watch: str) -> None:
    env = _env(NO_PIDFD="1" if watch == "poll" else "")
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, CHILD, "group"], env=env, stdout=subprocess.PIPE
    )
    pids: list[int] = []
    try:
        assert parent.stdout is not None
        pids = [int(p) for p in parent.stdout.readline().split()]
        assert len(pids) == 2 and all(is_running(p) for p in pids)
        parent.kill()
        parent.wait()
        assert wait_gone(pids, timeout=3.0) == []
    finally:
        parent.kill()
        parent.wait()
        parent.stdout.close()  # type: ignore[union-attr]
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_a_child_that_leads_no_group_kills_only_itself() -> None:
    # Started in its parent's process group (by hand, or by a test), the child must not
    # kill a group it merely joined: it exits, its helper is left to whoever owns it.
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, CHILD, "shared"],
        env=_env(),
        stdout=subprocess.PIPE,
        start_new_session=True,  # the group it joins is this parent's, not ours
    )
    pids: list[int] = []
    try:
        assert parent.stdout is not None
        pids = [int(p) for p in parent.stdout.readline().split()]
        parent.kill()
        parent.wait()
        child, helper = pids
        assert wait_gone([child], timeout=3.0) == []
        assert is_running(helper)
    finally:
        parent.kill()
        parent.wait()
        parent.stdout.close()  # type: ignore[union-attr]
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def test_a_parent_gone_before_the_child_looks_is_seen() -> None:
    # The race the PID in VENDO_RUNNER_PARENT closes: the parent died before the child
    # started watching (the child was orphaned at once).
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    child = subprocess.run(
        [sys.executable, "-c", CHILD],
        env=_env(VENDO_RUNNER_PARENT=str(gone.pid)),
        capture_output=True,
        timeout=30,
        start_new_session=True,
    )
    assert child.returncode in (1, -signal.SIGKILL)
    assert child.stdout == b""  # it never got past watch_parent()
