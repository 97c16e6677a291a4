"""Where ``vendo run`` and ``vendo predict`` save output files: one naming rule for both.

A file keeps the model's own file name (``out.png`` stays ``out.png``); a name already
taken in the folder gets a counter (``out.1.png``, ``out.2.png``)."""

from __future__ import annotations

from collections.abc import Container
from pathlib import Path

__all__ = ["output_target"]


def output_target(folder: Path, name: str, taken: Container[Path] = ()) -> Path:
    """A path in ``folder`` for an output file named ``name`` that overwrites nothing
    (neither an existing file nor one in ``taken``, written earlier by this run)."""
    folder.mkdir(parents=True, exist_ok=True)
    name = Path(name).name or "output"  # never a path outside the folder
    stem, suffix = Path(name).stem, Path(name).suffix
    target = folder / name
    n = 1
    while target.exists() or target in taken:
        target = folder / f"{stem}.{n}{suffix}"
        n += 1
    return target
