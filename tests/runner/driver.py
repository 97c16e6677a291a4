"""A small blocking driver for the runner child: spawn it, exchange frames, stop it."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Set

from vendo.runner.protocol import encode, read_message

SRC = Path(__file__).resolve().parents[2] / "src"


class Child:
    """One ``python -m vendo.runner serve`` process and our end of its socket."""

    def __init__(
        self,
        project: Path,
        ref: str = "predict.py:Predictor",
        *,
        mode: str = "predict",
        max_concurrency: Optional[int] = None,
        env: Optional[Dict[str, str]] = None,
        python: str = sys.executable,
        pythonpath: Optional[Path] = None,
    ) -> None:
        self.project = project
        parent_sock, child_sock = socket.socketpair()
        command = [
            python, "-m", "vendo.runner", "serve",
            "--project", str(project), "--ref", ref, "--mode", mode,
            "--fd", str(child_sock.fileno()),
        ]  # fmt: skip
        if max_concurrency is not None:
            command += ["--max-concurrency", str(max_concurrency)]
        child_env = {k: v for k, v in os.environ.items() if not k.startswith("COG_")}
        child_env["PYTHONPATH"] = str(pythonpath or SRC)
        child_env.update(env or {})
        self.process = subprocess.Popen(
            command, pass_fds=[child_sock.fileno()], env=child_env, cwd=str(project)
        )
        child_sock.close()
        self.sock = parent_sock
        self.sock.settimeout(30)
        self.messages: List[Dict[str, Any]] = []
        self._returned: Set[int] = set()

    def send(self, message: Dict[str, Any]) -> None:
        self.sock.sendall(encode(message))

    def recv(self) -> Optional[Dict[str, Any]]:
        message = read_message(self.sock)
        if message is not None:
            self.messages.append(message)
        return message

    def wait_for(self, *types: str, id: Optional[str] = None) -> Dict[str, Any]:
        """The first message of one of ``types`` (for ``id``, if given) not returned yet."""

        def matches(index: int, message: Dict[str, Any]) -> bool:
            return (
                index not in self._returned
                and message["type"] in types
                and (id is None or message.get("id") == id)
            )

        for index, message in enumerate(self.messages):
            if matches(index, message):
                self._returned.add(index)
                return message
        while True:
            message = self.recv()
            if message is None:
                raise EOFError(f"child closed the socket while waiting for {types}")
            if matches(len(self.messages) - 1, message):
                self._returned.add(len(self.messages) - 1)
                return message

    def ready(self) -> Dict[str, Any]:
        return self.wait_for("ready", "setup_failed")

    def predict(self, pid: str, input: Dict[str, Any], **extra: Any) -> None:
        self.send({"type": "predict", "id": pid, "input": input, "context": {}, **extra})

    def run(self, pid: str, input: Dict[str, Any], **extra: Any) -> Dict[str, Any]:
        self.predict(pid, input, **extra)
        return self.wait_for("done", id=pid)

    def of(self, pid: Optional[str], type_: str) -> List[Dict[str, Any]]:
        return [m for m in self.messages if m["type"] == type_ and m.get("id") == pid]

    def logs(self, pid: Optional[str]) -> str:
        return "".join(m["data"] for m in self.of(pid, "log"))

    def outputs(self, pid: str) -> List[Any]:
        return [m["value"] for m in sorted(self.of(pid, "output"), key=lambda m: m["index"])]

    def close(self, timeout: float = 10) -> Optional[int]:
        """Ask for a shutdown, then make sure the process is gone."""
        with contextlib.suppress(OSError):
            self.send({"type": "shutdown"})
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.sock.close()
        return self.process.returncode

    def __enter__(self) -> Child:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def spawn(project: Path, *args: Any, **kwargs: Any) -> Child:
    return Child(project, *args, **kwargs)


def run_openapi(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COG_")}
    env["PYTHONPATH"] = str(SRC)
    return subprocess.run(
        [sys.executable, "-m", "vendo.runner", "openapi", "--project", str(project), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


__all__: Sequence[str] = ["Child", "run_openapi", "spawn"]
