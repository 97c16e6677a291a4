"""Output values -> JSON for the protocol (spec/cog.md §4).

Files never travel as bytes between the processes: a path or file object becomes
``{"__vendo_file__": "/abs/path"}`` and the parent uploads it or makes a data URL.
Third-party types (pydantic, numpy) are recognised by duck typing, never imported.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import enum
import io
import os
import shutil
import tempfile
import types
from typing import Any, Callable, Union

from vendo.sdk.coder import Coder
from vendo.sdk.types import Secret

__all__ = ["FILE_KEY", "encode_output"]

# the same key as vendo.runner.protocol.FILE_KEY; schema may not import the runner package
FILE_KEY = "__vendo_file__"

# Where file outputs without a path on disk are copied to: a folder, or a callable that
# returns one (so that the folder is only created when such an output appears).
OutDir = Union[str, Callable[[], str], None]


def _file_marker(value: Any, out_dir: OutDir) -> Any:
    if isinstance(value, os.PathLike):
        return {FILE_KEY: os.path.abspath(os.fspath(value))}
    # An open file: reuse its path when it has one on disk, else copy its bytes out.
    name = getattr(value, "name", None)
    if isinstance(name, str) and os.path.isfile(name):
        return {FILE_KEY: os.path.abspath(name)}
    # no folder given: a fresh one, which the caller has to clean up
    folder = out_dir() if callable(out_dir) else out_dir or tempfile.mkdtemp(prefix="vendo-output-")
    base = os.path.basename(name) if isinstance(name, str) and name else "output"
    fd, path = tempfile.mkstemp(prefix="", suffix="-" + base, dir=folder)
    with os.fdopen(fd, "wb") as out:
        if hasattr(value, "seek"):
            with contextlib.suppress(OSError, ValueError):
                value.seek(0)
        shutil.copyfileobj(value, out)
    return {FILE_KEY: path}


def encode_output(value: Any, out_dir: OutDir = None) -> Any:
    """Turn one output value (or iterator item) into JSON, recursively."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, enum.Enum):
        return encode_output(value.value, out_dir)
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, Secret):
        return str(value)
    if isinstance(value, (os.PathLike, io.IOBase)):
        return _file_marker(value, out_dir)
    if isinstance(value, dict):
        return {str(k): encode_output(v, out_dir) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset, types.GeneratorType)):
        return [encode_output(v, out_dir) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: encode_output(getattr(value, f.name), out_dir)
            for f in dataclasses.fields(value)
        }
    dump = getattr(value, "model_dump", None) or getattr(value, "dict", None)
    if callable(dump):
        return encode_output(dump(), out_dir)
    tolist = getattr(value, "tolist", None)
    if callable(tolist):
        return encode_output(tolist(), out_dir)
    coder = Coder.lookup(type(value))
    if coder is not None:
        return encode_output(coder.encode(value), out_dir)
    raise TypeError(f"cannot encode output of type {type(value).__name__} as JSON")
