"""How a pushed version runs: its runner command and environment, from what push
recorded."""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path
from typing import Any

from vendo.config import Settings
from vendo.errors import RunnerError, VendoError
from vendo.scheduler.process import RunnerSpec
from vendo.store.tables import VersionRow

__all__ = [
    "is_iterator_schema",
    "local_environment",
    "local_package",
    "local_weights",
    "needs_package",
    "runner_spec",
    "train_spec",
]

log = logging.getLogger(__name__)


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


def _inside(path: str | None, folder: Path) -> bool:
    if not path:
        return False
    return Path(path).resolve().is_relative_to(folder.resolve())


def needs_package(version: VersionRow, storage: Any, data_dir: Path) -> bool:
    """Whether ``version`` must be made ready on this host first (scaled mode, storage
    a bucket): its package was pushed to another host (it is not in this data dir), so
    it comes from the bucket, and its environment is built here. One stat per path, no
    thread. A host never uses another's folders, even on a shared disk."""
    shared = storage is not None and bool(getattr(storage, "shared", False))
    if not shared or not version.digest or not version.package_path:
        return False
    env_dir = (version.environment or {}).get("env_dir")
    here = _inside(version.package_path, data_dir)
    return not here or bool(env_dir and not _inside(env_dir, data_dir))


def local_package(version: VersionRow, storage: Any, data_dir: Path) -> VersionRow:
    """``version`` with a ``package_path`` on this machine: the one push recorded when it
    is here, else the package unpacked from the shared bucket into
    ``<data dir>/packages/<digest>`` (scaled mode: the push was taken by another host).
    Blocking."""
    if not needs_package(version, storage, data_dir):
        return version
    recorded = version.package_path
    target = Path(data_dir).resolve() / "packages" / str(version.digest)
    if not target.is_dir() and not storage.restore_package(version.digest, target):
        raise RunnerError(
            f"version {version.id}: its package is neither at {recorded} nor in the bucket"
        )
    version.package_path = str(target)
    return version


def local_weights(version: VersionRow, storage: Any, data_dir: Path) -> VersionRow:
    """``version`` with its weights on this machine's disk. A training's weights kept in
    the bucket (scaled mode: ``s3://...``) are fetched once into ``<data dir>/weights/``
    and shared by every instance here; the runner could not read the bucket itself
    (it passes an ``http(s)`` URL to ``setup()`` as Cog does). Blocking."""
    weights = version.weights
    blobs = getattr(storage, "blobs", None)
    where = str(getattr(blobs, "where", ""))
    if not weights or not where.startswith("s3://") or not weights.startswith(where):
        return version
    assert blobs is not None  # it has a bucket's ``where``
    key = weights[len(where) :]
    target = Path(data_dir).resolve() / "weights" / key
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
        try:
            blobs.fetch(key, partial)
        except FileNotFoundError:
            raise RunnerError(
                f"version {version.id}: its weights are gone from {weights}"
            ) from None
        os.replace(partial, target)  # whole or absent: another instance may be reading
    version.weights = str(target)
    return version


def local_environment(version: VersionRow, settings: Settings) -> VersionRow:
    """``version`` with an environment built on this host (in its data dir, reused by
    the environment's content hash when built before) from its package, when the one
    push recorded was built in another host's data dir (scaled mode). Blocking: a first
    build installs the model's packages."""
    env_dir = (version.environment or {}).get("env_dir")
    if not env_dir or _inside(env_dir, Path(settings.data_dir)):
        return version
    from vendo.envs import build_project, environment_record

    try:
        result = build_project(
            str(version.package_path),
            settings,
            on_step=lambda text: log.info("version %s: %s", version.id[:12], text),
        )
    except VendoError as exc:
        raise RunnerError(f"version {version.id}: building its environment failed: {exc}") from exc
    version.environment = environment_record(result)
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
