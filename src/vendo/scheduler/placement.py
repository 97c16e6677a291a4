"""Placing instances on this machine: each gets the resources of its SKU.

An instance of a SKU gets CPU cores (its affinity: the least used cores), a memory
limit, and GPUs by index (``CUDA_VISIBLE_DEVICES``). GPUs are never shared: a machine
without a free GPU for another instance has no capacity for it, and its predictions
stay queued (:class:`Placer.place` says why). CPU cores and memory are shared between
instances unless ``Settings.strict_placement`` makes them capacity too. A GPU SKU on a
machine without enough GPUs runs on the CPU when ``Settings.gpu_as_cpu`` allows it
(development), with a warning.

The child applies its placement itself at start (:mod:`vendo.runner.limits`), from the
environment variables of :meth:`Placement.env`.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass

from vendo.hardware import Sku
from vendo.runner.limits import AFFINITY_ENV, MEMORY_ENV

__all__ = ["AFFINITY_ENV", "MEMORY_ENV", "Placement", "Placer"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Placement:
    """What one instance got: cores, memory (bytes), GPU indices."""

    cpus: tuple[int, ...]
    cpu_share: float
    memory_bytes: int
    gpus: tuple[int, ...] = ()
    gpu_as_cpu: bool = False
    hide_gpus: bool = False  # the machine has GPUs this instance must not touch

    def env(self) -> dict[str, str]:
        """The child's environment for this placement."""
        env = {
            AFFINITY_ENV: ",".join(str(c) for c in self.cpus),
            MEMORY_ENV: str(self.memory_bytes),
        }
        if self.gpus or self.hide_gpus:
            env["CUDA_VISIBLE_DEVICES"] = ",".join(str(g) for g in self.gpus)
        return env


def _machine_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        return 8 * 1024**3


class Placer:
    """The resources of this machine and which instance holds what."""

    def __init__(
        self,
        gpus: tuple[int, ...] = (),
        *,
        gpu_as_cpu: bool = False,
        strict: bool = False,
        cores: tuple[int, ...] | None = None,
        memory_bytes: int | None = None,
    ) -> None:
        self.cores = cores if cores is not None else tuple(sorted(os.sched_getaffinity(0)))
        self.memory_bytes = memory_bytes if memory_bytes is not None else _machine_memory()
        self.gpus = gpus
        self.gpu_as_cpu = gpu_as_cpu
        self.strict = strict
        self._core_load = {c: 0.0 for c in self.cores}
        self._memory_used = 0
        self._gpus_used: set[int] = set()
        self._warned: set[str] = set()

    def place(self, sku: Sku) -> Placement | str:
        """The resources for one more instance of ``sku``, taken; or why there are none."""
        share = min(float(sku.cpus), float(len(self.cores)))
        memory = min(int(sku.memory_gb * 1024**3), self.memory_bytes)
        free_gpus = [g for g in self.gpus if g not in self._gpus_used]
        gpus: tuple[int, ...] = ()
        as_cpu = False
        if sku.gpus:
            if len(self.gpus) >= sku.gpus:
                if len(free_gpus) < sku.gpus:
                    return (
                        f"no free GPU for another {sku.sku} instance: it needs {sku.gpus}, "
                        f"{len(free_gpus)} of this machine's {len(self.gpus)} are free"
                    )
                gpus = tuple(free_gpus[: sku.gpus])
            elif self.gpu_as_cpu:
                as_cpu = True
                if sku.sku not in self._warned:
                    self._warned.add(sku.sku)
                    log.warning(
                        "hardware %s needs %d GPU(s), this machine has %d: its instances run "
                        "on the CPU (VENDO_GPU_AS_CPU)",
                        sku.sku,
                        sku.gpus,
                        len(self.gpus),
                    )
            else:
                return (
                    f"hardware {sku.sku} needs {sku.gpus} GPU(s); this machine has {len(self.gpus)}"
                )
        if self.strict:
            used = sum(self._core_load.values())
            if used + share > len(self.cores) + 1e-9:
                return (
                    f"no CPU left for another {sku.sku} instance: it needs {share:g} cores, "
                    f"{len(self.cores) - used:g} of {len(self.cores)} are free"
                )
            if self._memory_used + memory > self.memory_bytes:
                return f"no memory left for another {sku.sku} instance"
        count = max(1, math.ceil(share))
        cores = sorted(self._core_load, key=lambda c: (self._core_load[c], c))[:count]
        for core in cores:
            self._core_load[core] += share / count
        self._memory_used += memory
        self._gpus_used.update(gpus)
        hide = bool(self.gpus) and not gpus
        return Placement(tuple(sorted(cores)), share, memory, gpus, as_cpu, hide)

    def release(self, placement: Placement) -> None:
        """An instance stopped: its resources are free again."""
        for core in placement.cpus:
            load = self._core_load.get(core, 0.0) - placement.cpu_share / len(placement.cpus)
            self._core_load[core] = max(0.0, load)
        self._memory_used = max(0, self._memory_used - placement.memory_bytes)
        self._gpus_used.difference_update(placement.gpus)
