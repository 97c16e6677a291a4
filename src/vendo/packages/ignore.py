"""``.dockerignore``-style exclude rules for packing a project.

Patterns follow Docker's rules, which Cog users already write: one pattern per line,
``#`` comments, paths relative to the project root (a leading ``/`` is ignored),
``*`` and ``?`` within one path segment, ``**`` across any number of segments, and
``!`` to re-include. A pattern that matches a folder excludes everything under it;
the last matching pattern wins.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["IgnoreRules"]


@dataclass(frozen=True)
class _Rule:
    regex: re.Pattern[str]
    negated: bool


def _translate(pattern: str) -> re.Pattern[str]:
    out: list[str] = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**", i):
            i += 2
            if pattern.startswith("/", i):
                # "**/" matches zero or more whole segments
                i += 1
                out.append("(?:.*/)?")
            else:
                out.append(".*")
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            end = pattern.find("]", i + 1)
            if end == -1:
                out.append(re.escape(c))
            else:
                body = pattern[i + 1 : end]
                if body.startswith(("!", "^")):
                    body = "^" + body[1:]
                out.append(f"[{body}]")
                i = end
        elif c == "\\" and i + 1 < len(pattern):
            i += 1
            out.append(re.escape(pattern[i]))
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out) + r"\Z")


def _clean(pattern: str) -> str:
    parts = [p for p in pattern.strip().replace("\\", "/").split("/") if p not in ("", ".")]
    return "/".join(parts)


class IgnoreRules:
    """An ordered list of patterns; :meth:`excluded` answers for one relative path."""

    def __init__(self, patterns: list[str] | None = None) -> None:
        self._rules: list[_Rule] = []
        for raw in patterns or []:
            self.add(raw)

    def add(self, raw: str) -> None:
        line = raw.strip()
        if not line or line.startswith("#"):
            return
        negated = line.startswith("!")
        cleaned = _clean(line[1:] if negated else line)
        if cleaned:
            self._rules.append(_Rule(_translate(cleaned), negated))

    @classmethod
    def from_files(cls, root: Path, names: tuple[str, ...]) -> IgnoreRules:
        rules = cls()
        for name in names:
            path = root / name
            if path.is_file():
                for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
                    rules.add(line)
        return rules

    @property
    def has_negations(self) -> bool:
        return any(rule.negated for rule in self._rules)

    def excluded(self, relpath: str) -> bool:
        """True if ``relpath`` (posix, relative to the root) or a parent folder is excluded."""
        parts = relpath.split("/")
        candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
        result = False
        for rule in self._rules:
            if any(rule.regex.match(c) for c in candidates):
                result = not rule.negated
        return result
