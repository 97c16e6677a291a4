"""The runtime's sources use nothing newer than Python 3.8 (spec/cog.md: models on 3.8+).

``test_interpreters.py`` runs the runtime under every interpreter it finds; this test
needs none: it parses each runtime module with 3.8's grammar and looks for the 3.9+
standard-library names and runtime-evaluated ``list[int]`` / ``X | Y`` forms that
parse fine but fail when run. Code under ``if sys.version_info >= (3, N)`` is exempt.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from vendo.runner.dist import runtime_files

ROOT = Path(__import__("vendo").__file__).resolve().parent
# Attributes and keywords added after 3.8 (str.removeprefix, typing.is_typeddict, ...).
NEWER_ATTRIBUTES = {
    "removeprefix": "3.9",
    "removesuffix": "3.9",
    "is_typeddict": "3.10",
    "to_thread": "3.9",
    "aclosing": "3.10",
    "bit_count": "3.10",
    "get_annotations": "3.10",
    "UnionType": "3.10",
    "TypeAlias": "3.10",
    "ParamSpec": "3.10",
    "Annotated": "3.9",
    "TaskGroup": "3.11",
    "pairwise": "3.10",
    "cache": "3.9",
}
NEWER_KEYWORDS = {"include_extras": "3.9", "kw_only": "3.10", "slots": "3.10", "strict": "3.10"}
NEWER_BUILTINS = {"anext": "3.10", "aiter": "3.10"}
SUBSCRIPTED = {"list", "dict", "tuple", "set", "frozenset", "type"}


def _guarded(test: ast.expr) -> bool:
    """``sys.version_info >= (3, N)``: its body may use 3.N features."""
    return (
        isinstance(test, ast.Compare)
        and isinstance(test.left, ast.Attribute)
        and test.left.attr == "version_info"
        and isinstance(test.ops[0], (ast.GtE, ast.Gt, ast.Lt, ast.LtE))
    )


class _Finder(ast.NodeVisitor):
    def __init__(self, lazy_annotations: bool) -> None:
        self.lazy = lazy_annotations
        self.problems: list[str] = []

    def flag(self, node: ast.AST, what: str) -> None:
        self.problems.append(f"line {getattr(node, 'lineno', '?')}: {what}")

    def visit_If(self, node: ast.If) -> None:  # noqa: N802 - ast's name
        if not _guarded(node.test):
            self.generic_visit(node)
            return
        # Only the branch that runs on 3.8 is checked.
        newer_first = isinstance(node.test.ops[0], (ast.GtE, ast.Gt))  # type: ignore[attr-defined]
        for stmt in node.orelse if newer_first else node.body:
            self.visit(stmt)

    def visit_arg(self, node: ast.arg) -> None:  # noqa: N802
        if not self.lazy and node.annotation is not None:
            self.visit(node.annotation)

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:  # noqa: N802
        self._function(node)

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> None:  # noqa: N802
        self._function(node)

    def _function(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        for child in (*node.decorator_list, *node.body):
            self.visit(child)
        self.visit(node.args)
        if not self.lazy and node.returns is not None:
            self.visit(node.returns)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:  # noqa: N802
        if not self.lazy:
            self.visit(node.annotation)
        if node.value is not None:
            self.visit(node.value)

    def visit_Attribute(self, node: ast.Attribute) -> None:  # noqa: N802
        if node.attr in NEWER_ATTRIBUTES:
            self.flag(node, f".{node.attr} is Python {NEWER_ATTRIBUTES[node.attr]}+")
        self.generic_visit(node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:  # noqa: N802
        for alias in node.names:
            if node.module != "__future__" and alias.name in NEWER_ATTRIBUTES:
                self.flag(node, f"{alias.name} is Python {NEWER_ATTRIBUTES[alias.name]}+")

    def visit_Call(self, node: ast.Call) -> None:  # noqa: N802
        for keyword in node.keywords:
            if keyword.arg in NEWER_KEYWORDS:
                self.flag(node, f"{keyword.arg}= is Python {NEWER_KEYWORDS[keyword.arg]}+")
        if isinstance(node.func, ast.Name) and node.func.id in NEWER_BUILTINS:
            self.flag(node, f"{node.func.id}() is Python {NEWER_BUILTINS[node.func.id]}+")
        self.generic_visit(node)

    def visit_Subscript(self, node: ast.Subscript) -> None:  # noqa: N802
        if isinstance(node.value, ast.Name) and node.value.id in SUBSCRIPTED:
            self.flag(node, f"{node.value.id}[...] evaluated at run time is Python 3.9+")
        self.generic_visit(node)

    def visit_BinOp(self, node: ast.BinOp) -> None:  # noqa: N802
        sides = (node.left, node.right)
        if isinstance(node.op, ast.BitOr) and any(
            (isinstance(s, ast.Constant) and s.value is None)
            or (isinstance(s, ast.Name) and s.id in SUBSCRIPTED | {"str", "int", "float"})
            for s in sides
        ):
            self.flag(node, "X | Y of types evaluated at run time is Python 3.10+")
        self.generic_visit(node)


@pytest.mark.parametrize("relative", [str(p) for p in runtime_files()])
def test_runtime_module_is_python_3_8(relative: str) -> None:
    source = (ROOT / relative).read_text(encoding="utf-8")
    tree = ast.parse(source, filename=relative, feature_version=(3, 8))
    lazy = any(
        isinstance(node, ast.ImportFrom)
        and node.module == "__future__"
        and any(a.name == "annotations" for a in node.names)
        for node in tree.body
    )
    finder = _Finder(lazy)
    finder.visit(tree)
    assert not finder.problems, f"{relative}: " + "; ".join(finder.problems)


def test_the_checker_catches_what_3_8_lacks() -> None:
    bad = (
        "import functools, typing\n"
        "x = 'ab'.removeprefix('a')\n"
        "y = list[int]\n"
        "z = typing.get_type_hints(f, include_extras=True)\n"
        "@functools.cache\n"
        "def f(a: int | None) -> None: ...\n"
    )
    finder = _Finder(lazy_annotations=False)
    finder.visit(ast.parse(bad))
    text = " ".join(finder.problems)
    for expected in ("removeprefix", "list[...]", "include_extras", ".cache", "X | Y"):
        assert expected in text, finder.problems
    guarded = "import sys\nif sys.version_info >= (3, 9):\n    x = 'ab'.removeprefix('a')\n"
    finder = _Finder(lazy_annotations=False)
    finder.visit(ast.parse(guarded))
    assert finder.problems == []
