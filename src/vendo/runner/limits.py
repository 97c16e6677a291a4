"""The child's share of the machine: applied first thing at start, before the model is
imported, from what the scheduler's placement put in the environment
(``vendo.scheduler.placement``): its CPU cores (affinity, which the threads and
processes it starts inherit) and its memory limit."""

from __future__ import annotations

import os
import sys
from typing import Mapping

__all__ = ["AFFINITY_ENV", "MEMORY_ENV", "apply_limits"]

AFFINITY_ENV = "VENDO_CPU_AFFINITY"  # comma-separated core numbers
MEMORY_ENV = "VENDO_MEMORY_LIMIT"  # bytes


def apply_limits(environ: Mapping[str, str]) -> None:
    """Pin this process to its cores and cap its memory; a limit the platform cannot
    apply is reported on stderr (the setup logs), never fatal."""
    cores = environ.get(AFFINITY_ENV, "").strip()
    if cores and hasattr(os, "sched_setaffinity"):
        try:
            os.sched_setaffinity(0, {int(c) for c in cores.split(",")})
        except (ValueError, OSError) as exc:
            print(f"vendo: could not pin the model to cores {cores}: {exc}", file=sys.stderr)
    memory = environ.get(MEMORY_ENV, "").strip()
    if memory:
        try:
            import resource

            # RLIMIT_DATA: the process's heap and private mappings. Not RLIMIT_AS: GPU
            # drivers reserve far more address space than they ever use.
            limit = int(memory)
            _, hard = resource.getrlimit(resource.RLIMIT_DATA)
            if hard != resource.RLIM_INFINITY:
                limit = min(limit, hard)
            resource.setrlimit(resource.RLIMIT_DATA, (limit, hard))
        except (ImportError, ValueError, OSError) as exc:
            print(f"vendo: could not limit the model's memory to {memory}: {exc}", file=sys.stderr)
