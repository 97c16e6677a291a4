"""What the web tests share: the site they run against (one ``vendo serve`` and one
headless Chromium for the whole of tests/web: see conftest.py) and its helpers."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from serve_support import vendo

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
ADMIN = "web-admin-token"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}


@dataclass
class Site:
    url: str
    alice: str  # a user's token: what most tests sign in with
    shots: Path

    def api(self, method: str, path: str, token: str | None = None, **kwargs: Any) -> Any:
        """A call to ``/v1`` with a bearer token (alice's unless given): how the tests
        check what a page did."""
        headers = {"Authorization": f"Bearer {token or self.alice}"}
        return httpx.request(method, f"{self.url}{path}", headers=headers, timeout=30, **kwargs)


def browser_or_fail() -> None:
    """A missing browser fails where the browser is required (CI), else skips."""
    missing = []
    if not Path(CHROMIUM).exists():
        missing.append(f"{CHROMIUM} (apt-get install chromium)")
    try:
        import playwright  # noqa: F401
    except ImportError:
        missing.append("the playwright package (pip install -e '.[test]')")
    if missing:
        message = "the web tests need " + " and ".join(missing)
        if os.environ.get("VENDO_REQUIRE_BROWSER", "") not in ("", "0"):
            pytest.fail(message + " (VENDO_REQUIRE_BROWSER is set)")
        pytest.skip(message)


def push(env: dict[str, str], cwd: Path, project: Path, ref: str, *args: str) -> None:
    done = vendo("push", str(project), ref, "-q", *args, cwd=cwd, env=env)
    assert done.returncode == 0, done.stderr


def new_user(url: str, name: str) -> str:
    made = httpx.post(f"{url}/v1/users", json={"username": name},
                      headers={"Authorization": f"Bearer {ADMIN}"}, timeout=30)  # fmt: skip
    assert made.status_code == 201, made.text
    return str(made.json()["token"])
