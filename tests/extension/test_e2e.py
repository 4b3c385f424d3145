"""End to end in a real Chromium through a real deepvre hub started here.

Sign up + admin approval; log in on the hub's login page in the browser; start a server with a
profile on the spawn page (it runs as the user's own OS account); JupyterLab; the Models panel
(the catalog comes from the hub's marketplace service with the server's token): empty state ->
search -> open a model by keyboard (its <script> description must not run) -> Fine-tune with a
changed parameter -> the parameterized notebook opens with papermill's injected cell -> a server
error is shown -> Run as batch job -> the run reaches "done". Screenshots: test-artifacts/extension/.
"""

import os
import secrets
import subprocess

import pytest

from tests.hub.hubprocess import HubProcess
from tests.prereqs import REPO, require, require_root

pytestmark = [pytest.mark.browser, pytest.mark.hub, pytest.mark.root]
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SHOTS = os.path.join(REPO, "test-artifacts", "extension")
PROFILES = [{"slug": "cpu", "display_name": "CPU", "description": "one core", "cpu": 1, "default": True}]
PASSWORD = "extension-" + secrets.token_hex(6)


@pytest.fixture(scope="module")
def hub(tmp_path_factory, colours_model):
    """A real hub (local mode, servers as OS accounts) whose marketplace holds the colours model."""
    require_root()
    require(os.path.exists(os.path.join(REPO, "node_modules/.bin/configurable-http-proxy")),
            "needs node_modules/.bin/configurable-http-proxy (npm install)")
    require(os.path.exists(CHROMIUM), "needs Debian's chromium (apt-get install chromium)")
    from deepvre.market.client import HTTPMarket

    process = HubProcess({"profiles": PROFILES}, tmp_path_factory.mktemp("ext-hub") / "state")
    process.user = f"ext{secrets.token_hex(3)}"
    try:
        process.start()
        admin = process.login(process.admin, process.admin_password)
        assert process.signup(process.user, PASSWORD).status_code == 200
        process.authorize(admin, process.user)
        process.admin_token = process.token(admin)
        # the user publishes the model through the hub's marketplace service, as `deepvre market publish` would
        user_token = process.token(process.login(process.user, PASSWORD), process.user)
        process.market = HTTPMarket(f"{process.url}/services/marketplace/", user_token)
        folder, doc = colours_model
        process.market.publish(
            doc, {p.name: p for p in folder.iterdir()}, visibility="public")
        yield process
    finally:
        try:
            if getattr(process, "admin_token", None) and process.server_model(process.admin_token, process.user):
                process.stop_server(process.admin_token, process.user)
        finally:
            process.stop()
            subprocess.run(["userdel", "-r", process.user], capture_output=True, check=False)


def test_models_panel_end_to_end_through_the_hub(hub):
    from playwright.sync_api import expect, sync_playwright

    os.makedirs(SHOTS, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.set_default_timeout(60_000)
        try:
            page.goto(f"{hub.url}/hub/login")
            page.fill("#username_input", hub.user)
            page.fill("#password_input", PASSWORD)
            page.click("#login_submit")
            # no server yet: the hub shows the spawn page with the profiles
            profile = page.locator('input[name="profile"][value="cpu"]')
            expect(profile).to_be_checked()
            page.screenshot(path=os.path.join(SHOTS, "0-spawn-page.png"))
            page.get_by_role("button", name="Start").click()
            page.wait_for_selector(".jp-LabShell", timeout=180_000)
            assert f"/user/{hub.user}/lab" in page.url

            page.click('li[data-id="deepvre-models"]')
            panel = page.locator("#deepvre-models")
            expect(panel.get_by_role("heading", name="Models")).to_be_visible()
            search = panel.get_by_label("Search models")
            search.fill("nothingmatchesthis")
            search.press("Enter")
            expect(panel.locator(".jp-deepvre-empty", has_text="No models match")).to_be_visible()
            expect(panel.locator(".jp-deepvre-empty", has_text="No runs yet")).to_be_visible()
            page.screenshot(path=os.path.join(SHOTS, "1-empty.png"))
            search.fill("colour")
            search.press("Enter")
            card = panel.locator(".jp-deepvre-card", has_text="Tiny colour classifier")
            expect(card).to_be_visible()
            expect(card).to_contain_text("accuracy")
            expect(card).to_contain_text(hub.user)  # the owner: who published through the service
            page.screenshot(path=os.path.join(SHOTS, "2-search.png"))

            # by keyboard: Enter on the focused card opens it, Enter on "All models" goes back
            card.focus()
            page.keyboard.press("Enter")
            title = panel.get_by_test_id("model-title")
            expect(title).to_have_text("Tiny colour classifier")
            panel.get_by_role("button", name="All models").focus()
            page.keyboard.press("Enter")
            expect(title).to_have_count(0)
            card.focus()
            page.keyboard.press("Enter")
            expect(title).to_have_text("Tiny colour classifier")
            description = panel.locator(".jp-deepvre-description")
            expect(description.locator("strong")).to_have_text("Bold claim.")
            assert description.locator("script").count() == 0
            assert description.locator("[onerror]").count() == 0
            assert page.evaluate("window.__deepvre_xss") is None
            page.screenshot(path=os.path.join(SHOTS, "3-details.png"))

            panel.get_by_role("button", name="Fine-tune").click()
            epochs = panel.locator('input[name="epochs"]')
            expect(epochs).to_have_value("1")
            epochs.fill("3")
            panel.get_by_role("button", name="Write notebook and open").click()
            expect(panel.get_by_test_id("action-status")).to_contain_text("Wrote fine-tune/colours-training")
            notebook = page.locator(".jp-NotebookPanel:visible")
            expect(notebook.locator(".jp-Cell", has_text="# Parameters")).to_be_visible()
            expect(notebook.locator(".jp-Cell", has_text="epochs = 3")).to_be_visible()
            page.screenshot(path=os.path.join(SHOTS, "4-fine-tune.png"))
            assert page.evaluate("window.__deepvre_xss") is None

            # an action's server error reaches the user with the server's message
            panel.get_by_role("button", name="Preprocess").click()
            panel.get_by_placeholder("data/images").fill("no-such-data")
            panel.get_by_role("button", name="Start preprocessing").click()
            error = panel.get_by_test_id("preprocess-status")
            expect(error).to_contain_text("'no-such-data' does not exist in the workspace")
            expect(error).to_have_attribute("role", "alert")
            page.screenshot(path=os.path.join(SHOTS, "5-server-error.png"))

            panel.get_by_role("button", name="Run as batch job").click()
            panel.locator('input[name="epochs"]').fill("2")
            panel.get_by_role("button", name="Start batch run").click()
            expect(panel.get_by_test_id("action-status")).to_contain_text("Started run")
            done = panel.locator('li.jp-deepvre-run[data-state="done"]')
            expect(done).to_have_count(1, timeout=240_000)
            expect(done).to_contain_text("epochs 2")
            expect(done).to_contain_text("accuracy")
            page.screenshot(path=os.path.join(SHOTS, "6-run-done.png"))

            # publish the run's model from the runs list, into the hub's marketplace
            done.get_by_placeholder("model name").fill("colours-ft")
            done.get_by_role("button", name="Publish").click()
            expect(panel.get_by_test_id("runs-status")).to_contain_text("Published colours-ft 1.0.0")
            page.screenshot(path=os.path.join(SHOTS, "7-published.png"))
        except Exception:
            page.screenshot(path=os.path.join(SHOTS, "failure.png"))
            raise
        finally:
            browser.close()
    published = hub.market.show("colours-ft")
    assert published["metadata"]["deepvre"]["base_model"] == {"name": "colours", "version": "1.0.0"}
    assert published["owner"] == hub.user and published["metadata"]["deepvre"]["metrics"]["epochs"] == 2
    # the run happened in the user's own home, as the user
    runs = f"/home/{hub.user}/runs"
    assert os.stat(runs).st_uid == int(subprocess.check_output(["id", "-u", hub.user]))
