"""The web tests' fixtures: one ``vendo serve`` with the example models pushed for all
of tests/web, one headless Chromium (Debian's ``chromium``, driven by Playwright) per
module; each test gets a fresh browser context signed in as alice."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from web_support import ADMIN, CHROMIUM, DESKTOP, ROOT, Site, browser_or_fail, new_user, push

from serve_support import clean_env, serving

# what the site serves, pushed once: (project, model)
MODELS = [
    (ROOT / "examples" / "hello-world", "admin/hello-world"),
    (ROOT / "examples" / "image", "admin/image"),
    (ROOT / "examples" / "stream-text", "admin/stream-text"),
    (ROOT / "examples" / "text-classifier", "admin/text-classifier"),
    (ROOT / "tests" / "fixtures" / "api_file_io", "admin/file-io"),
]


@pytest.fixture(scope="session")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    browser_or_fail()
    tmp = tmp_path_factory.mktemp("web")
    data = tmp / "data"
    # every SKU offered (run on the CPU): the deployment form has hardware to choose from
    env = clean_env(VENDO_API_TOKEN=ADMIN, VENDO_DATA_DIR=str(data),
                    VENDO_ALLOW_NEAREST_PYTHON="true", VENDO_GPU_AS_CPU="true")  # fmt: skip
    shots = Path(os.environ.get("VENDO_TEST_SCREENSHOTS") or tmp / "screenshots")
    shots.mkdir(parents=True, exist_ok=True)
    with serving(tmp, env, "--port", "0", data_dir=data) as (_, url):
        for project, model in MODELS:
            push(env, tmp, project, model)
        alice = new_user(url, "alice")
        bob_env = {**env, "VENDO_API_TOKEN": new_user(url, "bob")}
        push(bob_env, tmp, ROOT / "examples" / "hello-world", "bob/hidden-gem", "--private")
        yield Site(url, alice, shots)


# One browser per module, not per session: Playwright's sync API keeps an event loop
# running in this thread while it is open, and the asyncio tests after tests/web need
# the thread's loop free.
@pytest.fixture(scope="module")
def browser(site: Site) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(site: Site, browser: Any) -> Iterator[Any]:
    """A fresh browser context, signed in as alice through the sign-in form."""
    context = browser.new_context(base_url=site.url, viewport=DESKTOP)
    context.set_default_timeout(60_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto("/")
    assert page.url.startswith(f"{site.url}/login?next=")  # signed out: to the sign-in
    page.get_by_label("API token").fill(site.alice)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{site.url}/")
    try:
        yield page
    finally:
        context.close()
    assert errors == []  # no script failed on any page the test opened
