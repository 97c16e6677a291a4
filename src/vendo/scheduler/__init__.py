"""Runner supervision: child processes that run model code, and pools of them.

``Scheduler`` (pools per version, fed by the durable queue) is the platform's entry
point (:mod:`vendo.scheduler.scheduler` lists the modules a run goes through);
:mod:`vendo.scheduler.process` drives one runner child. The import is lazy so
that ``vendo serve-model`` can use the driver without loading the store.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vendo.scheduler.scheduler import Scheduler

__all__ = ["Scheduler"]


def __getattr__(name: str) -> Any:
    if name == "Scheduler":
        from vendo.scheduler.scheduler import Scheduler

        return Scheduler
    raise AttributeError(f"module 'vendo.scheduler' has no attribute {name!r}")
