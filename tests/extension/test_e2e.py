"""End to end in a real Chromium against a real `jupyter lab` started here (not yet the hub).

Models panel -> search -> open a model (its <script> description must not run) -> Fine-tune
with a changed parameter -> the parameterized notebook opens with papermill's injected cell ->
Run as batch job -> the run reaches "done". Screenshots go to test-artifacts/extension/.
"""

import os
import secrets
import socket
import subprocess
import sys
import time

import pytest
import requests

from tests.prereqs import REPO, require

pytestmark = pytest.mark.browser
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SHOTS = os.path.join(REPO, "test-artifacts", "extension")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(market_dir, tmp_path_factory):
    """A real JupyterLab server (the installed deepvre lab and server extensions) on loopback."""
    root = tmp_path_factory.mktemp("lab-root")
    port, token = free_port(), secrets.token_hex(16)
    bindir = os.path.dirname(sys.executable)
    env = dict(os.environ, DEEPVRE_MARKET_DIR=str(market_dir), PATH=bindir + os.pathsep + os.environ["PATH"],
               JUPYTER_CONFIG_DIR=str(tmp_path_factory.mktemp("jupyter-config")))
    log = open(root.parent / "lab.log", "wb")  # noqa: SIM115  (closed at teardown)
    proc = subprocess.Popen(
        [os.path.join(bindir, "jupyter"), "lab", "--no-browser", "--allow-root", "--ServerApp.ip=127.0.0.1",
         f"--ServerApp.port={port}", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}"],
        env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert proc.poll() is None, (root.parent / "lab.log").read_text()
        try:
            if requests.get(f"{url}/api/status", params={"token": token}, timeout=5).ok:
                break
        except requests.ConnectionError:
            pass
        time.sleep(0.3)
    yield {"url": url, "token": token, "root": root}
    proc.terminate()
    proc.wait(30)
    log.close()


def test_models_panel_end_to_end(lab):
    require(os.path.exists(CHROMIUM), "needs Debian's chromium (apt-get install chromium)")
    from playwright.sync_api import expect, sync_playwright

    os.makedirs(SHOTS, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.set_default_timeout(60_000)
        try:
            page.goto(f"{lab['url']}/lab?token={lab['token']}")
            page.wait_for_selector(".jp-LabShell")
            page.click('li[data-id="deepvre-models"]')
            panel = page.locator("#deepvre-models")
            expect(panel.get_by_role("heading", name="Models")).to_be_visible()
            panel.get_by_label("Search models").fill("colour")
            panel.get_by_label("Search models").press("Enter")
            card = panel.locator(".jp-deepvre-card", has_text="Tiny colour classifier")
            expect(card).to_be_visible()
            expect(card).to_contain_text("accuracy")
            page.screenshot(path=os.path.join(SHOTS, "1-search.png"))

            card.click()
            expect(panel.get_by_test_id("model-title")).to_have_text("Tiny colour classifier")
            description = panel.locator(".jp-deepvre-description")
            expect(description.locator("strong")).to_have_text("Bold claim.")
            assert description.locator("script").count() == 0
            assert description.locator("[onerror]").count() == 0
            assert page.evaluate("window.__deepvre_xss") is None
            page.screenshot(path=os.path.join(SHOTS, "2-details.png"))

            panel.get_by_role("button", name="Fine-tune").click()
            epochs = panel.locator('input[name="epochs"]')
            expect(epochs).to_have_value("1")
            epochs.fill("3")
            panel.get_by_role("button", name="Write notebook and open").click()
            expect(panel.get_by_test_id("action-status")).to_contain_text("Wrote fine-tune/colours-training")
            notebook = page.locator(".jp-NotebookPanel:visible")
            expect(notebook.locator(".jp-Cell", has_text="# Parameters")).to_be_visible()
            expect(notebook.locator(".jp-Cell", has_text="epochs = 3")).to_be_visible()
            page.screenshot(path=os.path.join(SHOTS, "3-fine-tune.png"))
            assert page.evaluate("window.__deepvre_xss") is None

            panel.get_by_role("button", name="Run as batch job").click()
            panel.locator('input[name="epochs"]').fill("2")
            panel.get_by_role("button", name="Start batch run").click()
            expect(panel.get_by_test_id("action-status")).to_contain_text("Started run")
            done = panel.locator('li.jp-deepvre-run[data-state="done"]')
            expect(done).to_have_count(1, timeout=240_000)
            expect(done).to_contain_text("accuracy 0.52")
            page.screenshot(path=os.path.join(SHOTS, "4-run-done.png"))
        except Exception:
            page.screenshot(path=os.path.join(SHOTS, "failure.png"))
            raise
        finally:
            browser.close()
