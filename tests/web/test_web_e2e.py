"""The web pages end to end, in a real headless Chromium (Debian's ``chromium``, driven
by Playwright): one ``vendo serve`` with real models pushed to it, and a browser that
signs in, runs them and reads what the page shows (the fixtures: conftest.py).

Screenshots of every page at desktop and phone width go to ``VENDO_TEST_SCREENSHOTS``
when set (CI keeps them as an artifact), else to a temporary folder: never into the
checkout.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from web_support import DESKTOP, PHONE, Site

from serve_support import clean_env

pytestmark = pytest.mark.slow

PAGES = ["/", "/admin/hello-world", "/admin/text-classifier", "/predictions", "/trainings",
         "/tokens", "/usage", "/deployments"]  # fmt: skip


def _shoot(page: Any, site: Site, name: str) -> None:
    for label, size in (("desktop", DESKTOP), ("phone", PHONE)):
        page.set_viewport_size(size)
        page.screenshot(path=str(site.shots / f"{name}-{label}.png"), full_page=True)
    page.set_viewport_size(DESKTOP)


def _run(page: Any, model: str, **inputs: str) -> Any:
    """Open the model's page, fill the form by its labels, press Run."""
    page.goto(f"/{model}")
    for name, value in inputs.items():
        page.get_by_label(name, exact=True).fill(value)
    page.get_by_role("button", name="Run", exact=True).click()
    return page.get_by_label("Output")


def test_sign_in_run_hello_world_and_open_its_page(page: Any, site: Site) -> None:
    from playwright.sync_api import expect

    expect(page.get_by_role("link", name="admin/hello-world")).to_be_visible()
    assert page.get_by_role("link", name="bob/hidden-gem").count() == 0
    _shoot(page, site, "explore")
    output = _run(page, "admin/hello-world", text="browser")
    expect(output).to_have_text("hello browser")
    expect(page.get_by_role("status")).to_have_text("succeeded")
    expect(page.get_by_label("Logs")).to_contain_text("greeting 'browser'")
    _shoot(page, site, "model")
    page.get_by_role("link", name="Open the prediction's page").click()
    page.wait_for_url(f"{site.url}/p/*")
    expect(page.get_by_label("Output")).to_have_text("hello browser")
    _shoot(page, site, "prediction")


def test_image_example_shows_the_image(page: Any, site: Site) -> None:
    from playwright.sync_api import expect

    output = _run(page, "admin/image", width="64", height="48", iterations="10")
    image = output.locator("img")
    expect(image).to_be_visible()
    size = image.evaluate("img => img.complete && [img.naturalWidth, img.naturalHeight]")
    assert size == [64, 48]


def test_streamed_text_grows_before_the_prediction_ends(page: Any) -> None:
    from playwright.sync_api import expect

    page.goto("/admin/stream-text")
    # every change of the output, with the status shown at that moment
    page.evaluate("""() => {
        window.seen = [];
        const output = document.querySelector('[aria-label="Output"]');
        new MutationObserver(() => window.seen.push(
            [output.textContent, document.getElementById('status').textContent]
        )).observe(output, {childList: true, subtree: true, characterData: true});
    }""")
    page.get_by_label("text", exact=True).fill("one two three four five")
    page.get_by_label("delay", exact=True).fill("0.4")
    page.get_by_role("button", name="Run", exact=True).click()
    expect(page.get_by_role("status")).to_have_text("succeeded")
    expect(page.get_by_label("Output")).to_have_text("one two three four five")
    seen = page.evaluate("window.seen")
    growing = [text for text, status in seen if text and status != "succeeded"]
    assert "one" in growing and "one two" in growing, seen  # shown word by word


def test_a_file_input_uploads(page: Any, site: Site, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    document = tmp_path / "note.txt"
    document.write_bytes(b"uploaded from the browser")
    page.goto("/admin/file-io")
    page.get_by_label("Upload a file for document").set_input_files(str(document))
    page.get_by_role("button", name="Run", exact=True).click()
    expect(page.get_by_role("status")).to_have_text("succeeded")
    link = page.get_by_label("Output").get_by_role("link")
    got = page.request.get(link.get_attribute("href"))
    assert got.body() == b"uploaded from the browser"[::-1]


def test_another_users_private_model_is_not_visible(page: Any, site: Site) -> None:
    from playwright.sync_api import expect

    page.get_by_label("Search models").fill("hidden")
    page.get_by_role("button", name="Search").click()
    expect(page.locator("#models")).to_have_text("No models found.")
    response = page.goto("/bob/hidden-gem")
    assert response.status == 404
    expect(page.get_by_role("heading", name="Not found")).to_be_visible()


def test_the_api_tabs_python_snippet_gives_the_same_output(page: Any, site: Site) -> None:
    from playwright.sync_api import expect

    output = _run(page, "admin/hello-world", text="snippet")
    expect(output).to_have_text("hello snippet")
    page.get_by_role("tab", name="API").click()
    code = page.locator("#snippet-python").inner_text()
    assert site.url in code
    ran = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=clean_env(REPLICATE_API_TOKEN=site.alice), timeout=120)  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout == output.inner_text() + "\n"
    page.get_by_role("tab", name="cURL").click()
    assert "Prefer: wait" in page.locator("#snippet-curl").inner_text()


def test_every_page_fits_a_phone_and_labels_its_fields(page: Any, site: Site) -> None:
    for path in PAGES:
        page.goto(path)
        page.wait_for_load_state("networkidle")
        name = path.strip("/").replace("/", "-") or "home"
        _shoot(page, site, name)
        page.set_viewport_size(PHONE)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], f"{path} scrolls sideways on a phone ({width}px)"
        page.set_viewport_size(DESKTOP)
        unlabelled = page.evaluate("""() => [...document.querySelectorAll(
            'main input:not([type=hidden]), main select, main textarea')].filter(
            e => !e.labels?.length && !e.getAttribute('aria-label')).map(e => e.id || e.name)""")
        assert unlabelled == [], path
        assert (site.shots / f"{name}-phone.png").stat().st_size > 0


def test_the_session_needs_its_csrf_header_and_ends_at_sign_out(page: Any, site: Site) -> None:
    from playwright.sync_api import expect

    assert page.request.get("/v1/account").status == 401  # the cookie alone is not enough
    csrf = page.locator('meta[name="vendo-csrf"]').get_attribute("content")
    account = page.request.get("/v1/account", headers={"X-CSRF-Token": csrf})
    assert account.status == 200 and account.json()["username"] == "alice"
    cookie = {"Cookie": "; ".join(f"{c['name']}={c['value']}" for c in page.context.cookies())}
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(f"{site.url}/login")
    # the session's token was revoked: the old cookie works nowhere any more
    replay = httpx.get(f"{site.url}/v1/account", headers={**cookie, "X-CSRF-Token": csrf})
    assert replay.status_code == 401
    _shoot(page, site, "login")
    page.goto("/predictions")
    assert "/login?next=" in page.url
    page.get_by_label("API token").fill("not-a-token")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("not valid")
    page.get_by_label("API token").fill(site.alice)  # the form works again at once
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{site.url}/predictions")
