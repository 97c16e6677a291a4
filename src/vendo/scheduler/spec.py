"""How a pushed version runs: its runner command and environment, from what push
recorded."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

from vendo.errors import RunnerError
from vendo.scheduler.process import RunnerSpec
from vendo.store.tables import VersionRow

__all__ = ["is_iterator_schema", "local_package", "needs_package", "runner_spec", "train_spec"]


def runner_spec(version: VersionRow) -> RunnerSpec:
    """How to start a runner for ``version``, from what push recorded.

    ``version.environment`` is what the build returned (``python``, ``runtime_path``,
    ``env``); ``version.config`` the parsed cog.yaml (``predict``, ``concurrency_max``,
    ``environment``).
    """
    env_info = version.environment or {}
    config = version.config or {}
    python = env_info.get("python")
    ref = config.get("predict")
    if not python or not ref or not version.package_path:
        raise RunnerError(f"version {version.id} has no built environment to run")
    env: dict[str, str] = {}
    env.update({str(k): str(v) for k, v in (config.get("environment") or {}).items()})
    env.update({str(k): str(v) for k, v in (env_info.get("env") or {}).items()})
    env_dir = env_info.get("env_dir")
    if env_dir and "PATH" not in env:
        # tools the model installed (console scripts) come first, as in the build
        env["PATH"] = os.pathsep.join([str(Path(env_dir) / "bin"), os.environ.get("PATH", "")])
    if version.weights:
        # setup(weights) gets them as Cog passes them: COG_WEIGHTS, a local path or URL
        env["COG_WEIGHTS"] = version.weights
    runtime = env_info.get("runtime_path")
    cmax = config.get("concurrency_max")
    return RunnerSpec(
        project=Path(version.package_path),
        ref=str(ref),
        python=str(python),
        runtime_path=Path(runtime) if runtime else None,
        # None (no concurrency.max in cog.yaml) lets @concurrent(max=...) decide
        max_concurrency=None if cmax is None else int(cmax),
        env=env,
    )


def needs_package(version: VersionRow, storage: Any) -> bool:
    """Whether ``version``'s package must come from the shared bucket first: it is not
    where push left it, and storage is a bucket (one stat, no thread)."""
    recorded = version.package_path
    shared = storage is not None and bool(getattr(storage, "shared", False))
    return shared and bool(recorded and version.digest) and not Path(str(recorded)).is_dir()


def local_package(version: VersionRow, storage: Any, data_dir: Path) -> VersionRow:
    """``version`` with a ``package_path`` on this machine: the one push recorded when it
    is here, else the package unpacked from the shared bucket into
    ``<data dir>/packages/<digest>`` (scaled mode: the push was taken by another host).
    Blocking."""
    if not needs_package(version, storage):
        return version
    recorded = version.package_path
    target = Path(data_dir).resolve() / "packages" / str(version.digest)
    if not target.is_dir() and not storage.restore_package(version.digest, target):
        raise RunnerError(
            f"version {version.id}: its package is neither at {recorded} nor in the bucket"
        )
    version.package_path = str(target)
    return version


def train_spec(version: VersionRow, spec: RunnerSpec) -> RunnerSpec:
    """The runner of ``version``'s trainings: the same environment, its ``train:`` ref
    in train mode, one training at a time."""
    ref = (version.config or {}).get("train")
    if not ref:
        raise RunnerError(f"version {version.id} has no train: in its cog.yaml")
    return dataclasses.replace(spec, ref=str(ref), mode="train", max_concurrency=1)


def is_iterator_schema(schema: dict[str, Any] | None) -> bool:
    """Whether a version's Output is an iterator (its items arrive one by one)."""
    output = ((schema or {}).get("components") or {}).get("schemas", {}).get("Output") or {}
    return output.get("x-cog-array-type") == "iterator"
