"""Model environments from cog.yaml, built with uv, without Docker.

``load_config(project_dir)`` reads and validates cog.yaml; ``build_project(project_dir,
settings)`` builds (or reuses) the environment and extracts the OpenAPI schema inside it.
"""

from __future__ import annotations

from vendo.envs.builder import (
    BuildResult,
    build_project,
    child_environment,
)
from vendo.envs.config import BuildConfig, CogConfig, RunStep, load_config, parse_config
from vendo.envs.records import environment_record

__all__ = [
    "BuildConfig",
    "BuildResult",
    "CogConfig",
    "RunStep",
    "build_project",
    "child_environment",
    "environment_record",
    "load_config",
    "parse_config",
]
