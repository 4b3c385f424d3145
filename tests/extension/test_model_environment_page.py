"""The model page's environment section and verification badge in a real Chromium, through a real
deepvre hub (local mode, the user's server as its OS account) and its marketplace service."""

import copy
import os
import re
import secrets
import subprocess

import pytest

from deepvre.runs import platform
from tests.hub.hubprocess import HubProcess
from tests.prereqs import REPO, require, require_proxy, require_root

from .test_e2e import ARGS, CHROMIUM, PASSWORD, PROFILES, open_lab

pytestmark = [pytest.mark.browser, pytest.mark.hub, pytest.mark.root]
SHOTS = os.path.join(REPO, "test-artifacts", "extension")


def test_model_page_shows_the_environment_its_differences_and_the_verification(tmp_path_factory, colours_model):
    require_root()
    require_proxy()
    require(os.path.exists(CHROMIUM), "needs Debian's chromium (apt-get install chromium)")
    from playwright.sync_api import expect, sync_playwright

    from deepvre.market.client import HTTPMarket

    process = HubProcess({"profiles": PROFILES}, tmp_path_factory.mktemp("env-hub") / "state")
    process.user = f"env{secrets.token_hex(3)}"
    try:
        process.start()
        admin = process.login(process.admin, process.admin_password)
        assert process.signup(process.user, PASSWORD).status_code == 200
        process.authorize(admin, process.user)
        process.admin_token = process.token(admin)
        market = HTTPMarket(f"{process.url}/services/marketplace/",
                            process.token(process.login(process.user, PASSWORD), process.user))
        folder, doc = colours_model
        doc = copy.deepcopy(doc)
        recorded = platform.capture()
        recorded["python"]["version"] = "3.0.0"
        recorded["packages"]["numpy"] = "0.0.1"
        doc["deepvre"].update(name="colours-env", environment=recorded)
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
                differences.get_by_text("Package differences").click()
                expect(model_page.get_by_test_id("environment-package-differences").locator("tr", has_text="numpy")
                       ).to_contain_text("0.0.1 →")
                verifications = model_page.get_by_test_id("verifications")
                expect(verifications).to_contain_text(f"drifted by {process.user}")
                expect(verifications).to_contain_text("off by -0.4")
                expect(verifications).not_to_contain_text("signature does not check out")
            except Exception:
                os.makedirs(SHOTS, exist_ok=True)
                page.screenshot(path=os.path.join(SHOTS, "model-environment-failure.png"))
                raise
            finally:
                browser.close()
    finally:
        try:
            if getattr(process, "admin_token", None) and process.server_model(process.admin_token, process.user):
                process.stop_server(process.admin_token, process.user)
        finally:
            process.stop()
            subprocess.run(["userdel", "-r", process.user], capture_output=True, check=False)
