"""The test suite's own rules (issue 10 item 6), checked on its source so that tests
added later follow them too: one copy of each helper, waits on events rather than fixed
sleeps, warnings as errors, and a quick local loop that leaves out the slow tests."""

from __future__ import annotations

import ast
from pathlib import Path

import tomllib

TESTS = Path(__file__).resolve().parents[1]
ROOT = TESTS.parent
# helpers that live once, in tests/support
SHARED = {"free_port", "_free_port", "until", "wait_until", "_wait_until", "children_of"}
# moving with the scheduler/store redesign (issue 10 items 1-2); their owners adopt
# tests/support as they move them
NOT_YET: tuple[str, ...] = ()
# A sleep here is part of the scenario, not a wait for something to happen; the comment
# `# not a wait: why` on its line says so.
MARK = "# not a wait:"


def _sources() -> list[Path]:
    skip = {"support", "fixtures", "js", *NOT_YET}
    return sorted(p for p in TESTS.rglob("*.py") if p.relative_to(TESTS).parts[0] not in skip)


def _calls_sleep(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "sleep"
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id in ("time", "asyncio", "anyio")
        # sleep(0) only yields to the event loop
        and not (node.args and isinstance(node.args[0], ast.Constant) and node.args[0].value == 0)
    )


def test_shared_helpers_are_defined_once() -> None:
    copies = [
        f"{path.relative_to(ROOT)}:{node.lineno} {node.name}"
        for path in _sources()
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name in SHARED
    ]
    assert copies == [], "use tests/support instead of a copy"


def test_no_fixed_sleeps_and_no_hand_written_loops_or_servers() -> None:
    found = []
    for path in _sources():
        text = path.read_text()
        lines = text.splitlines()
        for node in ast.walk(ast.parse(text)):
            where = f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', 0)}"
            if not hasattr(node, "lineno"):
                continue
            line = lines[node.lineno - 1]
            if _calls_sleep(node) and MARK not in line:
                found.append(f"{where} sleeps: wait for an event (support.until)")
            if isinstance(node, ast.Name) and node.id == "deadline":
                found.append(f"{where} polls by hand: use support.until")
            if isinstance(node, ast.Attribute) and node.attr == "serve_forever":
                found.append(f"{where} serves by hand: use support.start_http_server")
    assert sorted(set(found)) == []


def test_warnings_are_errors_and_slow_tests_can_be_left_out() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]
    options = config["ini_options"]
    assert options["filterwarnings"][0] == "error"
    assert any(m.startswith("slow:") for m in options["markers"])
    script = (ROOT / "scripts" / "test").read_text()
    assert 'marker=(-m "not slow")' in script and '"${marker[@]}"' in script
    assert "./scripts/test" in (ROOT / ".ci" / "run").read_text()  # CI runs everything
