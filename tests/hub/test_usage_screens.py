"""The quota and usage screens in a real Chromium through a real hub (issue 19): the spawn page of
a user at their GPU limit (the GPU profile disabled with the reason, their limits and use), their
own usage page, and the admin's page of everyone, per user and per group. Screenshots:
test-artifacts/usage/ (docs/screenshots/ with ``DEEPVRE_UPDATE_SCREENSHOTS=1``, for the README)."""

import datetime as dt
import os
import secrets

import pytest

from deepvre_hub import usage
from tests.hub.hubprocess import HubProcess
from tests.prereqs import REPO, require, require_proxy, require_root

pytestmark = [pytest.mark.browser, pytest.mark.hub, pytest.mark.root]
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SHOTS = (os.path.join(REPO, "docs", "screenshots") if os.environ.get("DEEPVRE_UPDATE_SCREENSHOTS")
         else os.path.join(REPO, "test-artifacts", "usage"))
PROFILES = [
    {"slug": "cpu", "display_name": "CPU", "description": "one core", "cpu": 1, "default": True},
    {"slug": "gpu-1", "display_name": "1 GPU", "description": "one core and a GPU", "cpu": 1, "gpus": 1},
]
PASSWORD = "screens-" + secrets.token_hex(6)


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    require_root()
    require_proxy()
    require(os.path.exists(CHROMIUM), "needs Debian's chromium (apt-get install chromium)")
    process = HubProcess({
        "profiles": PROFILES,
        "gpus": {"discovery": "list", "devices": [{"index": "0"}, {"index": "1"}]},
        "quotas": {"default": {"gpus": 1, "servers": 2, "gpu_hours_per_week": 40},
                   "groups": {"lab": {"gpu_hours_per_week": 100}}},
    }, tmp_path_factory.mktemp("usage-screens-hub") / "state")
    with process.running():
        admin = process.login(process.admin, process.admin_password)
        process.admin_token = process.token(admin)
        process.people = {}
        for role in ("ana", "ben"):
            name = f"scr{secrets.token_hex(2)}{role}"
            process.people[role] = (name, *process.approved_user(admin, name, PASSWORD))
        process.api(process.admin_token, "POST", "/groups/lab").raise_for_status()
        process.api(process.admin_token, "POST", "/groups/lab/users",
                    json={"users": [n for n, _, _ in process.people.values()]}).raise_for_status()
        # two weeks of earlier use
        book = usage.UsageBook(usage.default_url(process.state_dir))
        now = usage.utcnow()
        for day in range(14, 0, -1):
            for i, (name, _, _) in enumerate(process.people.values()):
                if (day + i) % 3:
                    start = now - dt.timedelta(days=day, hours=9 - i)
                    gpus = ["0"] if (day + i) % 2 else []
                    rid = book.open(name, "", "gpu-1" if gpus else "cpu", gpus, start=start)
                    book.close(rid, usage.USER, name, end=start + dt.timedelta(hours=2 + (day * (i + 1)) % 5))
        yield process


def log_in(page, hub, name, password):
    page.goto(f"{hub.url}/hub/login")
    page.fill("#username_input", name)
    page.fill("#password_input", password)
    page.click("#login_submit")
    page.wait_for_load_state()


def test_quota_and_usage_screens(hub):
    from playwright.sync_api import expect, sync_playwright

    os.makedirs(SHOTS, exist_ok=True)
    ana, _, ana_token = hub.people["ana"]
    assert hub.spawn(ana_token, ana, profile="gpu-1", server="train").status_code in (201, 202)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_context(viewport={"width": 1100, "height": 760}).new_page()
            page.set_default_timeout(60_000)
            log_in(page, hub, ana, PASSWORD)
            # ana holds her one GPU: the spawn page of another server disables the GPU profile and says why
            page.goto(f"{hub.url}/hub/spawn/{ana}/second")
            expect(page.locator('input[name="profile"][value="gpu-1"]')).to_be_disabled()
            expect(page.locator('input[name="profile"][value="cpu"]')).to_be_checked()
            expect(page.locator(".deepvre-unavailable")).to_contain_text("GPUs at once (your limit): 1 of 1 held")
            expect(page.locator(".deepvre-quota")).to_contain_text("GPUs at once: 1 of 1")
            page.screenshot(path=os.path.join(SHOTS, "quota-spawn-page.png"))
            # her usage: her rows only, the chart, the CSV link
            page.click(".deepvre-quota a")
            expect(page.locator("h1")).to_have_text(f"Usage of {ana}")
            expect(page.locator(".deepvre-usage-chart rect.gpu-hours")).to_have_count(28)
            assert page.locator(".deepvre-usage-rows tr[data-user]").count() > 1
            assert page.locator(f'.deepvre-usage-rows tr[data-user]:not([data-user="{ana}"])').count() == 0
            expect(page.locator(".deepvre-usage-rows tr[data-user]").first).to_contain_text("running")
            page.screenshot(path=os.path.join(SHOTS, "usage-own.png"))

            admin = browser.new_context(viewport={"width": 1100, "height": 760}).new_page()
            log_in(admin, hub, hub.admin, hub.admin_password)
            admin.goto(f"{hub.url}/hub/usage")
            expect(admin.locator("h1")).to_have_text("Usage of everyone")
            expect(admin.locator('.deepvre-usage-groups tr[data-name="lab"]')).to_be_visible()
            for name, _, _ in hub.people.values():
                expect(admin.locator(f'.deepvre-usage-users tr[data-name="{name}"]')).to_be_visible()
            admin.screenshot(path=os.path.join(SHOTS, "usage-admin.png"))
        finally:
            browser.close()
    hub.stop_server(ana_token, ana, "train")
