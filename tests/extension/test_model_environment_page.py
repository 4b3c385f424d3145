"""The model page's environment section, verification badge and Verify button in a real Chromium,
through a real deepvre hub (local mode, the user's server as its OS account) and its marketplace service."""

import copy
import os
import re

import pytest

from deepvre.runs import platform
from tests.prereqs import REPO

from .test_e2e import ARGS, CHROMIUM, hub, open_lab  # noqa: F401  (hub: test_e2e's fixture, a hub of its own here)

pytestmark = [pytest.mark.browser, pytest.mark.hub, pytest.mark.root]
SHOTS = os.path.join(REPO, "test-artifacts", "extension")


def test_model_page_shows_the_environment_its_differences_and_the_verification(hub, colours_model):  # noqa: F811
    """colours-env:1.0.0, published by the hub's user with a recorded environment unlike this one and
    one drifted record: the page shows both, and its Verify button adds the server's own."""
    from playwright.sync_api import expect, sync_playwright

    process = hub
    folder, doc = colours_model
    doc = copy.deepcopy(doc)
    recorded = platform.capture()
    recorded["python"]["version"] = "3.0.0"
    recorded["packages"]["numpy"] = "0.0.1"
    image = "localhost/deepvre/singleuser-cpu:0.1.0"  # trained in that container; this server runs in no image
    recorded["container"] = {"in_container": True, "image": image, "image_digest": "sha256:" + "e" * 64}
    doc["deepvre"].update(name="colours-env", environment=recorded)
    market = hub.market  # the user's token
    market.publish(doc, {p.name: p for p in folder.iterdir()}, visibility="public")
    record = market.add_verification("colours-env", "1.0.0", {
        "result": "drifted", "reason": "accuracy: 0.5 against 0.9 published, off by -0.4 (tolerance 0.05)",
        "metrics": {}, "environment": platform.capture()})
    assert record["verifier"] == process.user and record["valid"]

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
        page.set_default_timeout(60_000)
        try:
            open_lab(page, process)
            page.goto(f"{process.url}/user/{process.user}/lab?deepvre-model=colours-env:1.0.0")
            model_page = page.locator('[data-testid="model-page"][aria-label="Model page colours-env:1.0.0"]')
            expect(model_page).to_be_visible(timeout=120_000)
            expect(model_page.get_by_test_id("verification-badge")).to_have_text("drifted", timeout=120_000)
            environment = model_page.get_by_test_id("environment")
            expect(environment).to_contain_text("CPython 3.0.0")
            expect(environment).to_contain_text(recorded["platform"]["system"])
            differences = model_page.get_by_test_id("environment-differences")
            expect(differences).to_contain_text(re.compile(r"Python 3\.0\.0 here 3\.\d+\.\d+"))
            expect(differences).to_contain_text(re.compile(r"packages: [1-9]\d* changed"))
            expect(model_page.get_by_test_id("environment-container")).to_have_text(
                f"yes: {image} (sha256:{'e' * 12})")
            here = "unnamed image (digest unknown)" if platform.in_container() else "no container"  # this machine
            expect(model_page.get_by_test_id("environment-container-difference")).to_have_text(
                f"container {image} (sha256:{'e' * 12}) here {here}")
            differences.get_by_text("Package differences").click()
            expect(model_page.get_by_test_id("environment-package-differences").locator("tr", has_text="numpy")
                   ).to_contain_text("0.0.1 →")
            verifications = model_page.get_by_test_id("verifications")
            expect(verifications).to_contain_text(f"drifted by {process.user}")
            expect(verifications).to_contain_text("off by -0.4")
            expect(verifications).not_to_contain_text("signature does not check out")
            # Verify from the page: the server re-runs the lineage (the user's own model: no trust
            # dialog) and the marketplace's signed record joins the list
            model_page.get_by_role("button", name="Verify: re-run its lineage").click()
            status = model_page.get_by_test_id("verify-status")
            expect(status).to_contain_text("Verified here:", timeout=300_000)
            expect(verifications.locator("li")).to_have_count(2)
            expect(verifications.locator("li").nth(1)).to_contain_text(f"by {process.user}")
            expect(model_page.get_by_test_id("verification-badge")).to_have_text(re.compile("verified|drifted"))
        except Exception:
            os.makedirs(SHOTS, exist_ok=True)
            page.screenshot(path=os.path.join(SHOTS, "model-environment-failure.png"))
            raise
        finally:
            browser.close()
