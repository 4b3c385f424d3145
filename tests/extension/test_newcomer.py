"""The newcomer's path in Chromium, from an empty hub to a served model's try-it answer.

A fresh hub (local mode, the base model seeded by its marketplace at the first start); a user signs
up, is approved, starts a server, finds the seeded ``mobilenet-v2-imagenet`` in the Models panel and
serves it; the served models page links its try-it page. A second user, who never starts a server,
opens that page in another browser, logs in, uploads a photo of a cat and sees the top-k bars.
Screenshots: the served models page and the try-it page (docs/screenshots/ with
``DEEPVRE_UPDATE_SCREENSHOTS=1``, else test-artifacts/extension/pages/).
"""

import os
import time

import pytest

from tests.hub.hubprocess import HubProcess
from tests.prereqs import require, require_proxy, require_root
from tests.security.conftest import PASSWORD, new_name

from .test_e2e import ARGS, CHROMIUM, PROFILES, SCREENSHOTS, SHOTS

# the seed converts MobileNetV2 with TensorFlow at the hub's first start: 20 s alone, minutes on a busy machine
pytestmark = [pytest.mark.browser, pytest.mark.hub, pytest.mark.root, pytest.mark.timeout(1800)]
BASE = "mobilenet-v2-imagenet"


@pytest.fixture(scope="module")
def fresh_hub(tmp_path_factory):
    """A hub started on an empty state folder, seeding its base model; two approved new users."""
    require_root()
    require_proxy()
    require(os.path.exists(CHROMIUM), "needs Debian's chromium (apt-get install chromium)")
    from deepvre.science import mobilenet

    try:
        mobilenet.weights_path()
    except FileNotFoundError as err:
        require(False, str(err))
    hub = HubProcess({"profiles": PROFILES, "marketplace": {"seed_base_models": True}},
                     tmp_path_factory.mktemp("newcomer-hub") / "state")
    with hub.running():
        admin = hub.login(hub.admin, hub.admin_password)
        hub.user, hub.visitor = new_name("new"), new_name("try")
        for name in (hub.user, hub.visitor):
            hub.approved_user(admin, name, PASSWORD)
        hub.admin_token = hub.token(admin)
        seed = wait_seeded(hub)
        assert seed["state"] == "done", f"{seed}\n{hub.log_text()[-4000:]}"
        yield hub


def wait_seeded(hub, timeout=900):
    """The marketplace's seed status (``api/status``) once it is no longer seeding."""
    import requests

    start = time.monotonic()
    deadline = start + timeout
    while True:
        r = requests.get(f"{hub.url}/services/marketplace/api/status", timeout=30,
                         headers={"Authorization": f"token {hub.admin_token}"})
        seed = r.json().get("seed", {}) if r.status_code == 200 else {}
        early = seed.get("state") in (None, "off") and time.monotonic() - start < 120  # no status file yet
        if not (early or seed.get("state") == "seeding") or time.monotonic() > deadline:
            return seed or {"state": f"no status ({r.status_code})"}
        time.sleep(2)


def log_in(page, hub, name):
    page.fill("#username_input", name)
    page.fill("#password_input", PASSWORD)
    page.click("#login_submit")


def test_a_newcomer_serves_the_base_model_and_another_user_tries_it(fresh_hub, tmp_path):
    from PIL import Image
    from playwright.sync_api import expect, sync_playwright
    from skimage import data

    hub = fresh_hub
    photo = tmp_path / "cat.jpg"
    Image.fromarray(data.chelsea()).save(photo)
    os.makedirs(SCREENSHOTS, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            newcomer = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
            newcomer.set_default_timeout(60_000)
            newcomer.goto(f"{hub.url}/hub/login")
            log_in(newcomer, hub, hub.user)
            newcomer.get_by_role("button", name="Start", exact=True).click()
            newcomer.wait_for_selector(".jp-LabShell", timeout=180_000)
            newcomer.click('li[data-id="deepvre-models"]')
            panel = newcomer.locator("#deepvre-models")
            search = panel.get_by_label("Search models")
            card = panel.locator(".jp-deepvre-card", has_text="mobilenet")
            deadline = time.monotonic() + 120  # seeded (the fixture waited): the panel's search finds it
            while not card.count():
                if time.monotonic() > deadline:
                    newcomer.screenshot(path=os.path.join(SHOTS, "newcomer-no-base-model.png"))
                    pytest.fail("the seeded base model never appeared in the panel:\n" + hub.log_text()[-4000:])
                search.fill("mobilenet")
                search.press("Enter")
                newcomer.wait_for_timeout(2000)
            card.first.click()
            panel.get_by_role("button", name="Serve").click()
            service = panel.get_by_test_id("service")
            expect(service).to_have_attribute("data-state", "ready", timeout=300_000)
            panel.get_by_role("button", name="All services: logs and stop").click()
            served = newcomer.locator(".jp-deepvre-page-widget").get_by_test_id("served-model")
            expect(served).to_have_attribute("data-state", "ready")
            try_link = served.get_by_test_id("service-try-it")
            expect(try_link).to_be_visible(timeout=60_000)
            href = try_link.get_attribute("href")
            assert href.endswith(f"/services/marketplace/try/{BASE}/1.0.0"), href
            newcomer.screenshot(path=os.path.join(SCREENSHOTS, "served-models-try-it.png"))

            # a second user, no server of their own: another browser, the link, the hub's login
            visitor = browser.new_context(viewport={"width": 1100, "height": 900}).new_page()
            visitor.set_default_timeout(60_000)
            visitor.goto(hub.url + href)
            log_in(visitor, hub, hub.visitor)  # the hub's login page, where the link sent them; then back to it
            visitor.wait_for_url(f"**/try/{BASE}/1.0.0", timeout=60_000)
            expect(visitor.get_by_test_id("tryit-service")).to_contain_text(hub.user)
            visitor.get_by_test_id("tryit-file").set_input_files(str(photo))
            visitor.get_by_test_id("tryit-submit").click()
            bars = visitor.get_by_test_id("tryit-bar")
            expect(bars).to_have_count(5, timeout=120_000)
            expect(bars.first).to_contain_text("cat")  # skimage's Chelsea: a tabby
            visitor.screenshot(path=os.path.join(SCREENSHOTS, "try-it.png"), full_page=True)
            servers = hub.api(hub.admin_token, "GET", f"/users/{hub.visitor}").json()["servers"]
            assert not servers, servers  # they never had a server
        finally:
            browser.close()
