"""The store stays readable: small modules by kind of record, short functions, and an
explicit public API (issue 10's bar for ``src/vendo/store``)."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

STORE = Path(__file__).resolve().parents[2] / "src" / "vendo" / "store"
MODULES = sorted(p for p in STORE.glob("*.py"))


def test_no_store_module_is_over_600_lines() -> None:
    long = {p.name: n for p in MODULES if (n := len(p.read_text().splitlines())) > 600}
    assert long == {}


def test_no_store_function_is_over_60_lines() -> None:
    long = []
    for path in MODULES:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                assert node.end_lineno is not None
                if node.end_lineno - node.lineno + 1 > 60:
                    long.append(f"{path.name}:{node.name}")
    assert long == []


def test_every_store_module_declares_its_public_api() -> None:
    for path in MODULES:
        module = importlib.import_module(f"vendo.store.{path.stem}".removesuffix(".__init__"))
        names = getattr(module, "__all__", None)
        assert names, f"{path.name} has no __all__"
        missing = [n for n in names if not hasattr(module, n)]
        assert missing == [], f"{path.name} exports what it lacks: {missing}"
