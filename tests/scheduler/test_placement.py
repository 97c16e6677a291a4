"""Placing instances on a machine's resources (vendo.scheduler.placement): GPUs are
never shared, cores go to the least used, a GPU SKU runs on the CPU only when allowed,
and strict placement counts cores and memory as capacity. The machine is described to
the Placer (cores, memory, GPU indexes): nvidia-smi is the edge of the machine."""

from __future__ import annotations

from decimal import Decimal

import pytest

from vendo.hardware import Sku
from vendo.scheduler.placement import Placement, Placer

GIB = 1024**3
CPU = Sku("cpu", "CPU", 2, 4, Decimal("0.0001"))
GPU = Sku("gpu-1", "One GPU", 2, 8, Decimal("0.001"), gpus=1)
TWO_GPUS = Sku("gpu-2", "Two GPUs", 4, 16, Decimal("0.002"), gpus=2)


def _placer(gpus: tuple[int, ...] = (), **options: bool) -> Placer:
    return Placer(gpus, cores=(0, 1, 2, 3), memory_bytes=32 * GIB, **options)


def test_gpus_are_given_by_index_and_never_shared() -> None:
    placer = _placer((0, 1, 2))
    first = placer.place(GPU)
    pair = placer.place(TWO_GPUS)
    assert isinstance(first, Placement) and isinstance(pair, Placement)
    assert first.gpus == (0,) and pair.gpus == (1, 2)
    assert first.env()["CUDA_VISIBLE_DEVICES"] == "0"
    assert pair.env()["CUDA_VISIBLE_DEVICES"] == "1,2"
    refused = placer.place(GPU)
    assert isinstance(refused, str) and "no free GPU" in refused
    placer.release(first)
    again = placer.place(GPU)
    assert isinstance(again, Placement) and again.gpus == (0,)


def test_cpu_instances_on_a_gpu_machine_see_no_gpu() -> None:
    placed = _placer((0,)).place(CPU)
    assert isinstance(placed, Placement) and placed.env()["CUDA_VISIBLE_DEVICES"] == ""
    # on a machine without GPUs there is nothing to hide
    bare = _placer().place(CPU)
    assert isinstance(bare, Placement) and "CUDA_VISIBLE_DEVICES" not in bare.env()


def test_cores_go_to_the_least_used_and_memory_is_the_skus() -> None:
    placer = _placer()
    first, second = placer.place(CPU), placer.place(CPU)
    assert isinstance(first, Placement) and isinstance(second, Placement)
    assert first.cpus == (0, 1) and second.cpus == (2, 3)
    assert first.env()["VENDO_CPU_AFFINITY"] == "0,1"
    assert first.env()["VENDO_MEMORY_LIMIT"] == str(4 * GIB)


def test_a_gpu_sku_without_gpus_runs_on_the_cpu_only_when_allowed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    refused = _placer().place(GPU)
    assert isinstance(refused, str) and "needs 1 GPU(s); this machine has 0" in refused
    placed = _placer(gpu_as_cpu=True).place(GPU)
    assert isinstance(placed, Placement) and placed.gpu_as_cpu and placed.gpus == ()
    assert "run on the CPU" in caplog.text


def test_strict_placement_counts_cores_and_memory() -> None:
    shared = _placer()
    assert all(isinstance(shared.place(CPU), Placement) for _ in range(5))  # shared cores
    strict = _placer(strict=True)
    assert isinstance(strict.place(CPU), Placement)
    held = strict.place(CPU)
    assert isinstance(held, Placement)
    full = strict.place(CPU)
    assert isinstance(full, str) and "no CPU left" in full
    strict.release(held)
    assert isinstance(strict.place(CPU), Placement)
