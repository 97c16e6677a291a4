"""The hardware catalogue: the SKUs a server offers, their resources and prices.

A SKU is an opaque string compared by equality only (Replicate's are irregular:
``gpu-2x-l40s`` next to ``gpu-a100-large-2x``), so Replicate's strings are accepted
verbatim. The built-in catalogue holds ``cpu`` and Replicate's GPU SKUs with their
published prices; a TOML file (``VENDO_HARDWARE_FILE``) replaces it::

    [[hardware]]
    sku = "cpu"
    name = "CPU"
    cpus = 4
    memory_gb = 8
    price_per_second = 0.0001

A server *offers* (``GET /v1/hardware``) the SKUs it can place: those without GPUs
always, GPU SKUs when the machine has that many GPUs, or every SKU when
``VENDO_GPU_AS_CPU`` lets GPU SKUs run on the CPU (development).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import tomllib

from vendo.config import Settings
from vendo.errors import ConfigError

__all__ = [
    "DEFAULT_SKUS",
    "Catalog",
    "Gpu",
    "Hardware",
    "Sku",
    "capacity",
    "detect_gpus",
    "load_catalog",
    "server_hardware",
]


@dataclass(frozen=True)
class Sku:
    """One kind of hardware: what an instance of it gets, and what a second costs."""

    sku: str
    name: str
    cpus: float
    memory_gb: float
    price_per_second: Decimal
    gpus: int = 0
    gpu_model: str = ""
    vram_gb: float = 0.0

    def listed(self) -> dict[str, str]:
        """The ``{name, sku}`` object of ``GET /v1/hardware``."""
        return {"name": self.name, "sku": self.sku}


def _gpu(sku: str, name: str, price: str, gpus: int, model: str, vram: float, cpus: float,
         memory: float) -> Sku:  # fmt: skip
    return Sku(sku, name, cpus, memory, Decimal(price), gpus, model, vram)


# Replicate's pricing page (2025-26); "n x" SKUs multiply the per-GPU price and resources.
DEFAULT_SKUS: tuple[Sku, ...] = (
    Sku("cpu", "CPU", 4, 8, Decimal("0.000100")),
    _gpu("gpu-t4", "Nvidia T4 GPU", "0.000225", 1, "T4", 16, 4, 16),
    _gpu("gpu-a40-small", "Nvidia A40 GPU", "0.000575", 1, "A40", 48, 4, 16),
    _gpu("gpu-a40-large", "Nvidia A40 (Large) GPU", "0.000725", 1, "A40", 48, 10, 72),
    _gpu("gpu-l40s", "Nvidia L40S GPU", "0.000975", 1, "L40S", 48, 10, 65),
    _gpu("gpu-2x-l40s", "2x Nvidia L40S GPU", "0.001950", 2, "L40S", 48, 20, 144),
    _gpu("gpu-a100-large", "Nvidia A100 (80GB) GPU", "0.001400", 1, "A100", 80, 10, 144),
    _gpu("gpu-a100-large-2x", "2x Nvidia A100 (80GB) GPU", "0.002800", 2, "A100", 80, 20, 288),
    _gpu("gpu-h100", "Nvidia H100 GPU", "0.001525", 1, "H100", 80, 10, 144),
    _gpu("gpu-h100-2x", "2x Nvidia H100 GPU", "0.003050", 2, "H100", 80, 20, 288),
)


@dataclass(frozen=True)
class Gpu:
    """A GPU of this machine, as ``nvidia-smi`` reports it."""

    index: int
    name: str
    memory_mib: int


def detect_gpus() -> list[Gpu]:
    """This machine's NVIDIA GPUs; none when ``nvidia-smi`` is missing or fails (a
    machine without a driver serves CPU SKUs only)."""
    tool = shutil.which("nvidia-smi")
    if tool is None:
        return []
    try:
        out = subprocess.run(
            [tool, "--query-gpu=index,name,memory.total", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    found = []
    for line in out.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 3 and parts[0].isdigit() and parts[2].isdigit():
            found.append(Gpu(int(parts[0]), parts[1], int(parts[2])))
    return found


class Catalog:
    """The SKUs this server knows, in their listed order."""

    def __init__(self, skus: Iterable[Sku]) -> None:
        self._skus = {s.sku: s for s in skus}

    def __contains__(self, sku: object) -> bool:
        return sku in self._skus

    def __iter__(self) -> Any:
        return iter(self._skus.values())

    def get(self, sku: str) -> Sku | None:
        return self._skus.get(sku)

    def price(self, sku: str) -> Decimal:
        """Price per second of a SKU; a SKU no longer in the catalogue (a model made
        before an edit of the file) costs nothing rather than failing a usage report."""
        found = self._skus.get(sku)
        return found.price_per_second if found is not None else Decimal(0)

    def offered(self, gpu_count: int, gpu_as_cpu: bool = False) -> list[Sku]:
        """The SKUs an instance can be placed on here."""
        return [s for s in self._skus.values() if gpu_as_cpu or s.gpus <= gpu_count]


_FIELDS = {"sku", "name", "cpus", "memory_gb", "price_per_second", "gpus", "gpu_model", "vram_gb"}


def _entry(raw: Mapping[str, Any], where: str) -> Sku:
    unknown = set(raw) - _FIELDS
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
    try:
        sku, name = str(raw["sku"]), str(raw.get("name") or raw["sku"])
        price = Decimal(str(raw["price_per_second"]))
        cpus, memory = float(raw["cpus"]), float(raw["memory_gb"])
        gpus, vram = int(raw.get("gpus", 0)), float(raw.get("vram_gb", 0))
    except KeyError as exc:
        raise ConfigError(f"{where}: {exc.args[0]} is required") from exc
    except (ValueError, TypeError, InvalidOperation) as exc:
        raise ConfigError(f"{where}: {exc}") from exc
    if not sku or price < 0 or not price.is_finite() or cpus <= 0 or memory <= 0 or gpus < 0:
        raise ConfigError(
            f"{where}: sku must be non-empty; price_per_second >= 0; cpus and memory_gb > 0; "
            "gpus >= 0"
        )
    return Sku(sku, name, cpus, memory, price, gpus, str(raw.get("gpu_model", "")), vram)


def load_catalog(path: Path | None) -> Catalog:
    """The catalogue of a TOML file (``[[hardware]]`` tables), or the built-in one."""
    if path is None:
        return Catalog(DEFAULT_SKUS)
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"hardware file {path}: {exc}") from exc
    entries = data.get("hardware")
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"hardware file {path}: needs at least one [[hardware]] table")
    skus = [_entry(e, f"hardware file {path}, entry {i + 1}") for i, e in enumerate(entries)]
    if len({s.sku for s in skus}) != len(skus):
        raise ConfigError(f"hardware file {path}: a sku is listed twice")
    return Catalog(skus)


@dataclass(frozen=True)
class Hardware:
    """What one server knows of hardware: the catalogue (prices of every SKU, also of
    SKUs it cannot place) and the SKUs it offers, in the catalogue's order."""

    catalog: Catalog
    offered: tuple[Sku, ...]
    gpus: tuple[Gpu, ...]

    def offered_skus(self) -> list[str]:
        return [s.sku for s in self.offered]


def server_hardware(settings: Settings) -> Hardware:
    """The catalogue of the settings and what this machine can place of it. A bad
    hardware file raises :class:`ConfigError` (the server does not start)."""
    catalog = load_catalog(settings.hardware_file)
    gpus = tuple(detect_gpus())
    offered = tuple(catalog.offered(len(gpus), settings.gpu_as_cpu))
    if not offered:
        raise ConfigError(
            "the hardware catalogue has no SKU this machine can place (no GPUs found); "
            "add a SKU with gpus = 0 or set VENDO_GPU_AS_CPU=1"
        )
    return Hardware(catalog, offered, gpus)


def capacity(hardware: Hardware) -> dict[str, Any]:
    """What this host has, as the ``agents`` table records it (an agent's, a server's
    with runners on PostgreSQL)."""
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        memory = 0
    return {
        "cpus": len(os.sched_getaffinity(0)),
        "memory_bytes": memory,
        "gpus": [g.name for g in hardware.gpus],
    }
