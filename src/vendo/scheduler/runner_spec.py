"""What a runner child is, apart from driving it: how to start one (:class:`RunnerSpec`),
the states it goes through, the record of its setup that ``/health-check`` shows, and
how a message to it is framed.

:mod:`vendo.scheduler.process` drives the child; these types are also what the pools,
the CLI and serve-model name, so they live apart from that driver.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import orjson

from vendo.runner.protocol import encode, frame

__all__ = [
    "RunnerBusy",
    "RunnerNotReady",
    "RunnerSpec",
    "RunnerState",
    "SetupInfo",
    "handoff_error",
    "now_iso",
    "wire_frame",
]


class RunnerState(str, enum.Enum):
    STARTING = "STARTING"
    READY = "READY"
    BUSY = "BUSY"
    SETUP_FAILED = "SETUP_FAILED"
    UNHEALTHY = "UNHEALTHY"
    DEFUNCT = "DEFUNCT"


class RunnerNotReady(Exception):
    """The runner cannot take work now (starting, setup failed, defunct or closed)."""


class RunnerBusy(Exception):
    """Every concurrency slot is taken."""


@dataclass(frozen=True)
class RunnerSpec:
    """What to start: one model ref in one project, on one interpreter.

    ``runtime_path`` is the folder made by ``vendo.runner.dist.install_runtime`` and
    becomes the child's PYTHONPATH, so that only the runtime (never Vendo's own
    third-party packages) is importable next to the model's packages.
    """

    project: Path
    ref: str
    python: str
    runtime_path: Path | None = None
    mode: str = "predict"
    max_concurrency: int | None = None
    env: Mapping[str, str] = field(default_factory=dict)

    def command(self, fd: int) -> list[str]:
        cmd = [
            self.python,
            "-m",
            "vendo.runner",
            "serve",
            "--project",
            str(self.project),
            "--ref",
            self.ref,
            "--mode",
            self.mode,
            "--fd",
            str(fd),
        ]
        if self.max_concurrency is not None:
            cmd += ["--max-concurrency", str(self.max_concurrency)]
        return cmd

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(self.env)
        env["PYTHONUNBUFFERED"] = "1"
        if self.runtime_path is not None:
            env["PYTHONPATH"] = str(self.runtime_path)
        else:
            env.pop("PYTHONPATH", None)
        return env


def now_iso() -> str:
    """Now, in UTC and ISO 8601: how Cog's /health-check writes setup times."""
    return datetime.now(timezone.utc).isoformat()


@dataclass
class SetupInfo:
    """The latest setup of the child: Cog's ``setup`` object in /health-check."""

    started_at: str = field(default_factory=now_iso)
    completed_at: str | None = None
    status: str = "starting"  # starting | succeeded | failed
    logs: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"started_at": self.started_at, "status": self.status}
        if self.completed_at is not None:
            body["completed_at"] = self.completed_at
        body["logs"] = "".join(self.logs)
        return body


def wire_frame(message: dict[str, Any]) -> bytes:
    """``message`` as a frame: orjson's encoding (several times quicker, see
    :mod:`vendo.jsontext`), else the protocol's own, which refuses a lone surrogate."""
    try:
        return frame(orjson.dumps(message))
    except TypeError:  # orjson.JSONEncodeError
        return encode(message)


def handoff_error(exc: BaseException) -> str:
    """The error of a prediction that failed before its runner accepted it."""
    prefix = "the prediction could not be handed to the model"
    if isinstance(exc, UnicodeEncodeError):
        # json.loads lets a lone surrogate escape (\ud800) through; UTF-8 cannot hold it
        return f"{prefix}: an input holds a lone UTF-16 surrogate, which is not valid Unicode"
    return f"{prefix}: {type(exc).__name__}: {exc}"
