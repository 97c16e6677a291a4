"""What each pool runs: a pool key resolved to its :class:`Release`.

``version:<id>`` is the version's shared pool: min 0, max ``Settings.pool_max_instances``,
on its model's hardware. ``deployment:<owner>/<name>`` is the deployment's current
release: its version, hardware, min and max instances. ``train:<id>`` runs the
version's trainings: one runner in train mode (min 0, max 1), on its model's hardware.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from vendo.errors import RunnerError
from vendo.hardware import Hardware, Sku
from vendo.scheduler.context import SchedulerContext
from vendo.scheduler.instance import InstanceObserver, Release
from vendo.scheduler.placement import Placer
from vendo.scheduler.pool import PoolOptions, RunnerPool
from vendo.scheduler.process import RunnerSpec
from vendo.scheduler.spec import (
    is_iterator_schema,
    local_environment,
    local_package,
    local_weights,
    needs_package,
    train_spec,
)
from vendo.store.tables import VersionRow

__all__ = ["DEPLOYMENT", "TRAIN", "VERSION", "NotServed", "Releases"]

VERSION = "version:"
DEPLOYMENT = "deployment:"
TRAIN = "train:"


class NotServed(RunnerError):
    """This process does not serve the pool's hardware (an agent's ``--hardware``): it
    leaves the pool's jobs to the processes that do."""


class Releases:
    """Resolves pool keys to releases and makes the pools. With ``serves`` (an agent),
    only pools on those SKUs: the others raise :class:`NotServed` before anything of
    theirs is fetched or built."""

    def __init__(
        self,
        ctx: SchedulerContext,
        *,
        spec_for: Callable[[VersionRow], RunnerSpec],
        options: PoolOptions,
        hardware: Hardware | None,
        observer: InstanceObserver | None = None,
        serves: frozenset[str] | None = None,
    ) -> None:
        self.ctx = ctx
        self.serves = serves
        self._spec_for = spec_for
        self._options = options
        self._hardware = hardware
        self._observer = observer
        self.placer: Placer | None = None
        if hardware is not None:
            self.placer = Placer(
                tuple(g.index for g in hardware.gpus),
                gpu_as_cpu=ctx.settings.gpu_as_cpu,
                strict=ctx.settings.strict_placement,
            )

    def _sku(self, name: str) -> Sku | None:
        if self._hardware is None:
            return None
        return self._hardware.catalog.get(name)

    def _check_served(self, sku: str) -> None:
        if self.serves is not None and sku not in self.serves:
            raise NotServed(f"hardware {sku} is not served here ({', '.join(sorted(self.serves))})")

    async def _version(
        self, version_id: str, sku: str | None = None
    ) -> tuple[VersionRow, RunnerSpec]:
        """The version and how to run it here; ``sku``: the pool's hardware (else the
        model's), checked first."""
        ctx = self.ctx
        version = await ctx.blocking(ctx.store.catalog.version, version_id)
        if version is None:
            raise RunnerError(f"version {version_id} does not exist")
        self._check_served(sku if sku is not None else version.model.hardware)
        data_dir = Path(ctx.settings.data_dir)
        if needs_package(version, ctx.storage, data_dir):  # scaled mode: pushed elsewhere
            version = await ctx.blocking(local_package, version, ctx.storage, data_dir)
            version = await ctx.blocking(local_environment, version, ctx.settings)
        if version.weights:  # a trained version's weights, from the bucket when there
            version = await ctx.blocking(local_weights, version, ctx.storage, data_dir)
        spec = self._spec_for(version)
        ctx.iterators[version_id] = is_iterator_schema(version.openapi_schema)
        return version, spec

    async def release(self, key: str) -> Release:
        """The release of pool ``key`` as the store has it now (RunnerError: it cannot
        run: no such version or deployment, or nothing built to run)."""
        ctx = self.ctx
        if key.startswith(DEPLOYMENT):
            owner, _, name = key[len(DEPLOYMENT) :].partition("/")
            found = await ctx.blocking(ctx.store.deployments.get, owner, name)
            if found is None:
                raise RunnerError(f"deployment {owner}/{name} does not exist")
            row = found.release
            version, spec = await self._version(row.version_id, row.hardware)
            return Release(
                row.version_id,
                spec,
                row.min_instances,
                row.max_instances,
                self._sku(row.hardware),
                owner,
                row.number,
                owner_id=found.deployment.owner_id,
                model=_model_name(version),
                deployment=f"{owner}/{name}",
            )
        training = key.startswith(TRAIN)
        version_id = key.removeprefix(TRAIN) if training else key.removeprefix(VERSION)
        version, spec = await self._version(version_id)
        if training:
            spec = train_spec(version, spec)
        model = version.model
        return Release(
            version_id,
            spec,
            0,
            1 if training else ctx.settings.pool_max_instances,
            self._sku(model.hardware),
            model.owner.username,
            owner_id=model.owner_id,
            model=_model_name(version),
            shared=model.visibility == "public",
        )

    def new_pool(self, key: str, release: Release) -> RunnerPool:
        return RunnerPool(key, release, self._options, placer=self.placer, observer=self._observer)

    async def standing(self) -> list[str]:
        """Deployments that keep instances up (min_instances > 0): their pool keys."""
        ctx = self.ctx
        every = await ctx.blocking(ctx.store.deployments.every)
        return [d.pool for d in every if d.release.min_instances > 0]


def _model_name(version: VersionRow) -> str:
    return f"{version.model.owner.username}/{version.model.name}"
