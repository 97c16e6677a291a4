"""The pages' forms used as a user would, in the browser, and what they did checked
through the API: deployments (create, edit, field errors), tokens (create, shown once,
revoke), a training of examples/text-classifier, and the ``source`` the pages'
predictions record. The site and the browser are conftest.py's."""

from __future__ import annotations

from typing import Any

import pytest
from web_support import ROOT, Site

pytestmark = pytest.mark.slow


def _latest(site: Site, model: str) -> str:
    found = site.api("GET", f"/v1/models/{model}")
    assert found.status_code == 200, found.text
    return str(found.json()["latest_version"]["id"])


def test_a_prediction_made_in_the_browser_records_source_web(page: Any, site: Site) -> None:
    from playwright.sync_api import expect

    page.goto("/admin/hello-world")
    page.get_by_label("text", exact=True).fill("source")
    page.get_by_role("button", name="Run", exact=True).click()
    expect(page.get_by_role("status")).to_have_text("succeeded")
    web_id = page.get_by_role("link", name="Open the prediction's page").get_attribute("href")
    made = site.api("GET", f"/v1/predictions/{web_id.rsplit('/', 1)[-1]}")
    assert made.status_code == 200 and made.json()["source"] == "web", made.text
    by_token = site.api("POST", "/v1/predictions", json={
        "version": _latest(site, "admin/hello-world"), "input": {"text": "token"}})  # fmt: skip
    assert by_token.status_code == 201, by_token.text
    assert site.api("GET", f"/v1/predictions/{by_token.json()['id']}").json()["source"] == "api"


def _field_error(page: Any, label: str) -> Any:
    """The error shown next to the field labelled ``label`` (its aria-describedby)."""
    field = page.get_by_label(label, exact=True)
    ids = field.get_attribute("aria-describedby").split()
    return page.locator(f"#{ids[-1]}")


def test_create_and_edit_a_deployment(page: Any, site: Site) -> None:
    from playwright.sync_api import expect

    version = _latest(site, "admin/hello-world")
    page.goto("/deployments")
    expect(page.locator("#deployments")).to_contain_text("No deployments yet.")
    page.get_by_label("Name", exact=True).fill("Web Hello")  # not a valid name
    page.get_by_label("Model", exact=True).fill("admin/no-such-model")
    page.get_by_label("Model", exact=True).blur()
    expect(_field_error(page, "Model")).to_have_text(
        "There is no model admin/no-such-model that you can see.")  # fmt: skip
    page.get_by_label("Model", exact=True).fill("admin/hello-world")
    page.get_by_label("Model", exact=True).blur()
    expect(page.get_by_label("Version", exact=True)).to_have_value(version)  # the latest
    expect(_field_error(page, "Model")).to_be_hidden()
    page.get_by_label("Hardware", exact=True).select_option("cpu")
    page.get_by_label("Minimum instances", exact=True).fill("3")
    page.get_by_label("Maximum instances", exact=True).fill("2")
    page.get_by_role("button", name="Create", exact=True).click()
    expect(_field_error(page, "Name")).to_contain_text("Use lowercase letters")
    expect(_field_error(page, "Minimum instances")).to_have_text(
        "The minimum cannot be more than the maximum.")  # fmt: skip
    assert site.api("GET", "/v1/deployments").json()["results"] == []  # nothing made
    page.get_by_label("Name", exact=True).fill("web-hello")
    page.get_by_label("Minimum instances", exact=True).fill("0")
    page.get_by_role("button", name="Create", exact=True).click()
    expect(page.get_by_role("button", name="Edit web-hello")).to_be_visible()
    expect(_field_error(page, "Name")).to_be_hidden()
    made = site.api("GET", "/v1/deployments/alice/web-hello").json()["current_release"]
    assert made["model"] == "admin/hello-world" and made["version"] == version
    assert made["configuration"] == {"hardware": "cpu", "min_instances": 0, "max_instances": 2}

    page.get_by_role("button", name="Edit web-hello").click()
    expect(page.get_by_role("heading", name="Edit alice/web-hello")).to_be_visible()
    expect(page.get_by_label("Version", exact=True)).to_have_value(version)
    page.get_by_label("Hardware", exact=True).select_option("gpu-t4")
    page.get_by_label("Maximum instances", exact=True).fill("101")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(_field_error(page, "Maximum instances")).to_have_text("Give a number from 0 to 100.")
    page.get_by_label("Maximum instances", exact=True).fill("4")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.get_by_role("heading", name="Create a deployment")).to_be_visible()
    edited = site.api("GET", "/v1/deployments/alice/web-hello").json()["current_release"]
    assert edited["number"] == made["number"] + 1
    assert edited["configuration"] == {"hardware": "gpu-t4", "min_instances": 0,
                                       "max_instances": 4}  # fmt: skip
    row = page.get_by_role("row").filter(has_text="alice/web-hello")
    expect(row).to_contain_text("gpu-t4")


def test_create_a_token_see_it_once_and_revoke_it(page: Any, site: Site) -> None:
    from playwright.sync_api import expect

    page.goto("/tokens")
    page.get_by_label("Name", exact=True).fill("x" * 201)
    page.get_by_role("button", name="Create token").click()
    expect(_field_error(page, "Name")).to_have_text("A token's name is at most 200 characters.")
    page.get_by_label("Name", exact=True).fill("laptop")
    page.get_by_role("button", name="Create token").click()
    shown = page.locator("#new-token-value")
    expect(shown).not_to_be_empty()
    expect(_field_error(page, "Name")).to_be_hidden()
    token = shown.inner_text()
    assert site.api("GET", "/v1/account", token).json()["username"] == "alice"
    page.reload()
    expect(page.get_by_role("button", name="Revoke laptop")).to_be_visible()
    assert token not in page.content()  # shown once: never again
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Revoke laptop").click()
    expect(page.get_by_role("button", name="Revoke laptop")).to_have_count(0)
    assert site.api("GET", "/v1/account", token).status_code == 401


def test_train_a_text_classifier_and_run_the_new_version(page: Any, site: Site) -> None:
    from playwright.sync_api import expect

    page.goto("/admin/text-classifier")
    page.get_by_role("tab", name="Train").click()
    page.get_by_label("Upload a file for examples").set_input_files(
        str(ROOT / "examples" / "text-classifier" / "topics.csv"))  # fmt: skip
    page.get_by_label("smoothing", exact=True).fill("0")  # below its minimum
    page.get_by_label("destination", exact=True).fill("bob/not-mine")
    page.get_by_role("button", name="Start training").click()
    expect(_field_error(page, "destination")).to_contain_text("use one of your own")
    page.get_by_label("destination", exact=True).fill("alice/my-classifier")
    page.get_by_role("button", name="Start training").click()
    expect(_field_error(page, "smoothing")).to_be_visible()
    expect(_field_error(page, "destination")).to_be_hidden()
    page.get_by_label("smoothing", exact=True).fill("0.5")
    page.get_by_role("button", name="Start training").click()
    expect(page.locator("#train-status")).to_have_text("succeeded")
    expect(page.get_by_label("Training logs", exact=True)).to_contain_text(
        "training on 12 examples"
    )
    trainings = site.api("GET", "/v1/trainings").json()["results"]
    done = [t for t in trainings if t["status"] == "succeeded"]
    assert len(done) == 1 and done[0]["destination"] == "alice/my-classifier"
    assert done[0]["source"] == "web" and done[0]["input"]["smoothing"] == 0.5
    made = done[0]["output"]["version"]  # alice/my-classifier:<id>
    assert _latest(site, "alice/my-classifier") == made.split(":")[1]
    result = page.get_by_label("Training output", exact=True)
    expect(result).to_contain_text(made.split(":")[1][:12])
    result.get_by_role("link", name="alice/my-classifier").click()
    page.wait_for_url(f"{site.url}/alice/my-classifier")
    page.get_by_label("text", exact=True).fill("knead the dough and bake the bread")
    page.get_by_role("button", name="Run", exact=True).click()
    expect(page.get_by_label("Output", exact=True)).to_contain_text("cooking")
    # the trainings list links to the training's own page
    page.goto("/trainings")
    page.get_by_role("link", name=done[0]["id"]).click()
    expect(page.get_by_role("heading", name=f"Training {done[0]['id']}")).to_be_visible()
    expect(page.get_by_role("status")).to_have_text("succeeded")
    expect(page.get_by_label("Output", exact=True)).to_contain_text(made)
