"""Find and load the model's class or function, with ``cog`` registered first."""

from __future__ import annotations

import importlib.util
import inspect
import os
import sys
import types
from dataclasses import dataclass
from typing import Any, Callable, Optional

from vendo.schema.inspector import inspect_predictor, inspect_setup
from vendo.schema.records import LoadError, PredictorInfo

__all__ = ["Loaded", "load", "register_cog"]

_COG_SUBMODULES = ("types", "predictor", "input", "model", "coder", "exceptions", "scope")


def register_cog() -> None:
    """Make ``import cog`` (and its submodules) resolve to :mod:`vendo.sdk`."""
    import vendo.sdk

    sys.modules["cog"] = vendo.sdk
    for name in _COG_SUBMODULES:
        module = importlib.import_module(f"vendo.sdk.{name}")
        sys.modules[f"cog.{name}"] = module


@dataclass
class Loaded:
    """A loaded ref: the class or function, and what the inspector made of it."""

    target: Any
    method: str
    is_class: bool
    info: PredictorInfo

    def instantiate(self) -> Bound:
        if not self.is_class:
            return Bound(self.target, None, None)
        instance = self.target()
        setup = getattr(instance, "setup", None)
        healthcheck = getattr(instance, "healthcheck", None)
        return Bound(
            getattr(instance, self.method),
            setup if callable(setup) else None,
            healthcheck if callable(healthcheck) else None,
        )


@dataclass
class Bound:
    run: Callable[..., Any]
    setup: Optional[Callable[..., Any]]
    healthcheck: Optional[Callable[..., Any]]


def _import_file(project: str, filename: str) -> types.ModuleType:
    path = os.path.join(project, filename)
    if not os.path.isfile(path):
        raise LoadError(f"{filename} not found in the project directory")
    module_name = os.path.splitext(os.path.basename(filename))[0]
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise LoadError(f"cannot import {filename}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


def load(project: str, ref: str, mode: str = "predict") -> Loaded:
    """Import ``ref`` (``file.py:Name`` or bare ``file.py``) and inspect it.

    Exceptions raised by the model's own module propagate unchanged; rule breaks are
    :class:`LoadError`.
    """
    filename, _, name = ref.partition(":")
    module = _import_file(project, filename)
    if not name:
        candidates = ("Trainer", "train") if mode == "train" else ("Runner", "Predictor")
        name = next((c for c in candidates if hasattr(module, c)), "")
        if not name:
            raise LoadError(f"{filename} defines none of {', '.join(candidates)}")
    if not hasattr(module, name):
        raise LoadError(f"{filename} has no attribute {name!r}")
    target = getattr(module, name)
    if inspect.isclass(target):
        if mode == "train":
            method = "train"
            if not callable(getattr(target, "train", None)):
                raise LoadError(f"{name} must define train()")
        else:
            has_run = callable(getattr(target, "run", None))
            has_predict = callable(getattr(target, "predict", None))
            if has_run and has_predict:
                raise LoadError(f"{name} defines both run() and predict(); define exactly one")
            if not (has_run or has_predict):
                raise LoadError(f"{name} must define run() or predict()")
            method = "run" if has_run else "predict"
        fn = getattr(target, method)
        info = inspect_predictor(fn, method, is_method=True)
        setup = getattr(target, "setup", None)
        if callable(setup):
            inspect_setup(setup, info, is_method=True)
        return Loaded(target, method, True, info)
    if callable(target):
        info = inspect_predictor(target, name, is_method=False)
        return Loaded(target, name, False, info)
    raise LoadError(f"{filename}:{name} is neither a class nor a function")
