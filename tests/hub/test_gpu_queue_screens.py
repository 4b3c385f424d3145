"""The GPU queue in a real Chromium through a real hub (issue 19): the spawn page offers the busy
GPU profile and says the server will wait; submitting it leads to JupyterHub's progress page,
which shows the place in the queue and the estimate, and moves on by itself to the server when
the holder's GPU is released. Screenshots: test-artifacts/usage/ (docs/screenshots/ with
``DEEPVRE_UPDATE_SCREENSHOTS=1``, for the README)."""

import contextlib
import os

import pytest

from tests.hub.test_gpu_queue_hub import PASSWORD, start_queue_hub
from tests.hub.test_usage_screens import ARGS, CHROMIUM, SHOTS, log_in
from tests.prereqs import require, require_proxy, require_root

pytestmark = [pytest.mark.browser, pytest.mark.hub, pytest.mark.root]


@contextlib.contextmanager
def logged_in(hub, name):
    """A page of Debian's headless Chromium, logged in to the hub as ``name``."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_context(viewport={"width": 1100, "height": 760}).new_page()
        page.set_default_timeout(60_000)
        log_in(page, hub, name, PASSWORD)
        yield page
        browser.close()


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    require_root()
    require_proxy()
    require(os.path.exists(CHROMIUM), "needs Debian's chromium (apt-get install chromium)")
    process, names = start_queue_hub(tmp_path_factory.mktemp("queue-screens-hub"), roles=("ana", "ben"))
    with process.running():
        admin = process.login(process.admin, process.admin_password)
        process.people = {role: (name, *process.approved_user(admin, name, PASSWORD)) for role, name in names.items()}
        yield process


def test_the_queue_on_the_spawn_and_progress_pages(hub):
    from playwright.sync_api import expect

    os.makedirs(SHOTS, exist_ok=True)
    (ana, _, ana_token), (ben, _, ben_token) = hub.people["ana"], hub.people["ben"]
    assert hub.spawn(ana_token, ana, profile="gpu-1").status_code in (201, 202)
    with logged_in(hub, ben) as page:
        page.goto(f"{hub.url}/hub/spawn/{ben}")
        expect(page.locator('input[name="profile"][value="gpu-1"]')).to_be_enabled()
        expect(page.locator('[data-profile="gpu-1"] .deepvre-queue')).to_contain_text(
            "your server will wait in the GPU queue (0 waiting now)")
        page.screenshot(path=os.path.join(SHOTS, "gpu-queue-spawn-page.png"))
        page.check('input[name="profile"][value="gpu-1"]')
        page.click('#spawn_form input[type="submit"], #spawn_form button[type="submit"]')
        expect(page.locator("#progress-message")).to_contain_text("Waiting for a GPU: 1st in the queue",
                                                                  timeout=90_000)
        expect(page.locator("#progress-message")).to_contain_text(f"if {ana}'s server stays idle")
        page.screenshot(path=os.path.join(SHOTS, "gpu-queue-progress.png"))
        hub.stop_server(ana_token, ana)
        page.wait_for_url(f"**/user/{ben}/**", timeout=120_000)  # the page moves on to the server
    assert (hub.server_model(ben_token, ben) or {}).get("ready")
    hub.stop_server(ben_token, ben)
