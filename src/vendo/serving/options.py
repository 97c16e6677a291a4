"""What ``vendo serve-model`` serves and how: :class:`CogServerOptions`, filled from
cog.yaml, ``COG_*`` variables and the command line."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vendo.serving.records import FetchLimits
from vendo.webhooks.sender import RetryPolicy

if TYPE_CHECKING:
    from vendo.envs import BuildResult, CogConfig

__all__ = ["CogServerOptions"]


@dataclass
class CogServerOptions:
    """Everything ``create_app`` needs; :meth:`from_project` fills it from cog.yaml."""

    project: Path
    predict_ref: str | None
    train_ref: str | None = None
    python: str = sys.executable
    runtime_path: Path | None = None
    max_concurrency: int | None = None
    environment: Mapping[str, str] = field(default_factory=dict)
    upload_url: str | None = None
    cancel_grace: float = 10.0
    max_restarts: int = 3
    restart_backoff: float = 0.5
    stream_capacity: int = 1024
    throttle_interval: float = 0.5
    keepalive: float = 15.0
    webhook_auth_token: str | None = None
    webhook_retry: RetryPolicy = field(default_factory=RetryPolicy)
    webhook_timeout: float = 10.0
    retention: float = 600.0
    work_dir: Path | None = None
    fetch_limits: FetchLimits = field(default_factory=FetchLimits)
    on_shutdown: Callable[[], None] | None = None
    # Move everything loaded at start-up out of the collector's sight: shorter GC pauses
    # on the request path. Process-wide, so only the serve-model command turns it on.
    freeze_gc: bool = False

    @classmethod
    def from_project(
        cls, project: Path, *, config: CogConfig | None = None, **overrides: Any
    ) -> CogServerOptions:
        """Options for the model in ``project``: cog.yaml (read unless ``config`` is
        given), then COG_* variables, then ``overrides``. The child runs on ``python``
        (default: this interpreter); :meth:`from_build` runs it in a built environment."""
        from vendo.envs.config import load_config

        if config is None:
            config = load_config(project)
        env = os.environ
        values: dict[str, Any] = {
            "project": config.project_dir,
            "predict_ref": config.predict,
            "train_ref": config.train,
            # None when cog.yaml has no concurrency.max: the decorator then has its say
            "max_concurrency": config.concurrency_max,
            "environment": dict(config.environment),
            "webhook_auth_token": env.get("WEBHOOK_AUTH_TOKEN") or None,
        }
        if env.get("COG_STREAM_HISTORY_CAPACITY"):
            values["stream_capacity"] = int(env["COG_STREAM_HISTORY_CAPACITY"])
        if env.get("COG_THROTTLE_RESPONSE_INTERVAL"):
            values["throttle_interval"] = float(env["COG_THROTTLE_RESPONSE_INTERVAL"])
        values.update(overrides)
        return cls(**values)

    @classmethod
    def from_build(cls, result: BuildResult, **overrides: Any) -> CogServerOptions:
        """Options that run the model inside the environment ``build_project`` made."""
        from vendo.envs import child_environment

        values: dict[str, Any] = {
            "python": str(result.python),
            "runtime_path": result.runtime_path,
            # the env's variables, its bin first on PATH, and cog.yaml's environment
            "environment": child_environment(result),
            **overrides,
        }
        return cls.from_project(result.project_dir, config=result.config, **values)
