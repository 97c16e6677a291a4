"""The hardware catalogue: what this server's runners can use."""

from __future__ import annotations

import functools
import shutil

__all__ = ["hardware", "hardware_skus"]


@functools.cache
def hardware() -> list[dict[str, str]]:
    """``[{sku, name}]``: always the CPU; a GPU entry when NVIDIA's tools are present."""
    found = [{"sku": "cpu", "name": "CPU"}]
    if shutil.which("nvidia-smi"):
        found.append({"sku": "gpu", "name": "NVIDIA GPU"})
    return found


def hardware_skus() -> list[str]:
    return [h["sku"] for h in hardware()]
