"""Imports flow one way (ARCHITECTURE.md §4); this test keeps them that way.

Extensions to the architecture's table, each for a reason:
- ``envs`` installs the runtime into environments: it may use ``runner.dist``.
- ``scheduler`` and ``api`` speak the runner's wire format: ``runner.protocol``.
- ``scheduler`` places instances through the child's environment: ``runner.limits``.
- ``api`` builds pushed packages (``envs``, ``packages``) and queues webhooks.
- ``packages`` (project archives) is a leaf next to ``envs``.
- ``serving`` (serve-model's in-memory engine) sits between ``scheduler`` and ``api``:
  it drives runners through the scheduler's driver and run-event handling, and sends
  webhooks; it loads no store (serve-model has no database).
- ``web`` (the pages) sits on top of ``api``: its pages call ``/v1`` from the browser,
  and its server side uses the API's own sign-in check, session cookie and visibility
  rule (``api.v1.context``, ``api.v1.session``) rather than a second copy of them.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "vendo"

STDLIB_ONLY = {"sdk", "schema", "runner"}
BASE = {"errors", "config", "status", "hardware", "jsontext", "__init__"}

ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "status": set(),
    "jsontext": set(),
    "config": {"errors"},
    "hardware": {"errors", "config"},
    # vendo/__init__.py is import-free and ships with the runtime (it holds the version)
    "sdk": {"__init__"},
    "schema": {"__init__", "sdk"},
    "runner": {"__init__", "sdk", "schema"},
    "envs": BASE | {"runner.dist"},
    "packages": BASE,
    "store": BASE,
    "queue": BASE | {"store"},
    "files": BASE | {"store"},
    "webhooks": BASE | {"store", "files"},
    "scheduler": BASE
    | {"runner.protocol", "runner.limits", "queue", "store", "files", "schema", "envs"},
    "serving": BASE | {"runner.protocol", "scheduler", "files", "schema", "webhooks", "envs"},
    "api": BASE
    | {"store", "queue", "files", "scheduler", "schema", "webhooks", "envs", "packages"}
    | {"runner.protocol", "serving"},
    "web": BASE | {"store", "api"},
}


def _imports(path: Path, package: str) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            # `from vendo.runner import dist` names the submodule in the alias
            if node.module == "vendo":
                names = ["vendo"]
            else:
                names = [f"{node.module}.{alias.name}" for alias in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] != "vendo":
                continue
            if len(parts) == 1:
                found.add("__init__")
            elif parts[1] != package:
                found.add(".".join(parts[1:3]) if parts[1] == "runner" else parts[1])
    return found


def _third_party(path: Path) -> set[str]:
    import sys

    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            tops = [alias.name.split(".")[0] for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            tops = [node.module.split(".")[0]]
        else:
            continue
        found |= {t for t in tops if t not in sys.stdlib_module_names and t != "vendo"}
    return found


def test_imports_flow_one_way() -> None:
    problems = []
    for package, allowed in ALLOWED.items():
        target = SRC / package
        files = list(target.rglob("*.py")) if target.is_dir() else [SRC / f"{package}.py"]
        for path in files:
            if not path.exists():
                continue
            for imported in _imports(path, package):
                ok = imported in allowed or imported.split(".")[0] in allowed
                if not ok:
                    problems.append(f"{path.relative_to(SRC)} imports vendo.{imported}")
    assert problems == []


def test_model_runtime_is_stdlib_only() -> None:
    problems = []
    for package in STDLIB_ONLY:
        for path in (SRC / package).rglob("*.py"):
            extra = _third_party(path)
            if extra:
                problems.append(f"{path.relative_to(SRC)} imports {sorted(extra)}")
    assert problems == []
    assert (SRC / "__init__.py").read_text().count("import ") == 0
