"""End to end in a real Chromium through a real deepvre hub started here.

Sign up + admin approval; log in on the hub's login page in the browser; start a server with a
profile on the spawn page (it runs as the user's own OS account); JupyterLab; the Models panel
(the catalog comes from the hub's marketplace service with the server's token): empty state ->
search -> open a model by keyboard (its <script> description must not run) -> Fine-tune with a
changed parameter -> the parameterized notebook opens with papermill's injected cell -> a server
error is shown -> Run as batch job -> the run reaches "done" -> a model another user published
needs a confirmation naming its owner and the notebook's sha256 before it runs (Cancel starts
nothing). Screenshots: test-artifacts/extension/. Then the pages in the main area: a model page, a
batch run's live page, publishing from it and the published model's page (screenshots: docs/screenshots/).
"""

import os
import re
import secrets
import subprocess
import time

import pytest

from tests.hub.hubprocess import HubProcess
from tests.prereqs import REPO, require, require_proxy, require_root

from .conftest import TRAINING, make_notebook, write_photos

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
    require_proxy()
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
        # another user publishes a copy: running its notebook needs the user's confirmation
        process.other = f"ext{secrets.token_hex(3)}o"
        assert process.signup(process.other, PASSWORD).status_code == 200
        process.authorize(admin, process.other)
        other_token = process.token(process.login(process.other, PASSWORD), process.other)
        shared = {**doc, "title": "Shared colour classifier", "deepvre": {**doc["deepvre"], "name": "colours-shared"}}
        HTTPMarket(f"{process.url}/services/marketplace/", other_token).publish(
            shared, {p.name: p for p in folder.iterdir()}, visibility="public")
        yield process
    finally:
        try:
            if getattr(process, "admin_token", None) and process.server_model(process.admin_token, process.user):
                process.stop_server(process.admin_token, process.user)
        finally:
            process.stop()
            for name in (process.user, getattr(process, "other", None)):
                if name:
                    subprocess.run(["userdel", "-r", name], capture_output=True, check=False)


def photo_folder(user):
    """``~/photos``: two classes of real photographs (crops of scikit-image's samples) and one
    corrupt file, owned by ``user``."""
    import pwd

    entry = pwd.getpwnam(user)
    root = os.path.join(entry.pw_dir, "photos")
    write_photos(root)
    for folder, _dirs, files in os.walk(root):
        for name in [folder, *(os.path.join(folder, f) for f in files)]:
            os.chown(name, entry.pw_uid, entry.pw_gid)


def tab_to(page, target, limit=40):
    """Press Tab until ``target`` has the focus (keyboard only), at most ``limit`` times."""
    for _ in range(limit):
        if target.evaluate("el => el === document.activeElement"):
            return
        page.keyboard.press("Tab")
    raise AssertionError(f"{target} not reached with {limit} Tabs")


def wait_until_ok(page, url, timeout=120):
    """Open ``url`` in ``page`` until it answers 200 (a service behind the proxy may still be starting)."""
    deadline = time.monotonic() + timeout
    while (response := page.goto(url)) is None or response.status != 200:
        assert time.monotonic() < deadline, f"{url} answered {response and response.status} for {timeout} s"
        page.wait_for_timeout(500)


def test_models_panel_end_to_end_through_the_hub(hub):
    from playwright.sync_api import expect, sync_playwright

    os.makedirs(SHOTS, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        browser_context = browser.new_context(viewport={"width": 1400, "height": 900})
        page = browser_context.new_page()
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
            # a new user's lab opens its Launcher in the main area, which takes the focus when it
            # comes: the keyboard checks below start once it is there
            expect(page.locator(".jp-Launcher")).to_be_visible(timeout=60_000)

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
            # the filters offer what the catalog has, with counts (two public colour models, both "base")
            expect(panel.get_by_label("Use case").locator("option")).to_have_text(["any", "base (2)"])

            # by keyboard only: Tab to the card, Enter opens it and focus moves to its heading;
            # Escape goes back with focus on the card; Tab and Enter reach every action
            list_region = panel.get_by_role("region", name="Model list")
            expect(list_region).to_have_attribute("aria-busy", "false")
            search.focus()
            tab_to(page, card)
            expect(card).to_have_css("outline-style", "solid")  # a visible focus ring
            page.keyboard.press("Enter")
            title = panel.get_by_test_id("model-title")
            expect(title).to_have_text("Tiny colour classifier")
            expect(title).to_be_focused()
            page.keyboard.press("Escape")
            expect(title).to_have_count(0)
            expect(card).to_be_focused()
            page.keyboard.press("Enter")
            expect(title).to_be_focused()
            description = panel.locator(".jp-deepvre-description")
            expect(description.locator("strong")).to_have_text("Bold claim.")
            assert description.locator("script").count() == 0
            assert description.locator("[onerror]").count() == 0
            assert page.evaluate("window.__deepvre_xss") is None
            page.screenshot(path=os.path.join(SHOTS, "3-details.png"))

            details = panel.get_by_role("region", name="Model Tiny colour classifier")
            tab_to(page, panel.get_by_role("button", name="Fine-tune"))
            page.keyboard.press("Enter")
            epochs = panel.locator('input[name="epochs"]')
            expect(epochs).to_have_value("1")
            expect(details).to_have_attribute("aria-busy", "false")
            path = panel.locator('input[name="notebook-path"]')
            expect(path).to_have_attribute("placeholder", "fine-tune/colours-training.ipynb")
            tab_to(page, epochs)
            page.keyboard.press("Control+A")
            page.keyboard.type("3")
            tab_to(page, panel.get_by_role("button", name="Write notebook and open"))
            page.keyboard.press("Enter")
            form_status = panel.get_by_test_id("form-status")
            expect(form_status).to_contain_text("Wrote fine-tune/colours-training.ipynb")
            notebook = page.locator(".jp-NotebookPanel:visible")
            expect(notebook.locator(".jp-Cell", has_text="# Parameters")).to_be_visible()
            expect(notebook.locator(".jp-Cell", has_text="epochs = 3")).to_be_visible()
            page.screenshot(path=os.path.join(SHOTS, "4-fine-tune.png"))
            assert page.evaluate("window.__deepvre_xss") is None

            # a taken target path: the server's 409 message shows in the form
            path.fill("fine-tune/colours-training.ipynb")
            panel.get_by_role("button", name="Write notebook and open").click()
            expect(form_status).to_have_text(
                "'fine-tune/colours-training.ipynb' already exists; choose another name")
            expect(form_status).to_have_attribute("role", "alert")
            expect(panel.get_by_role("form", name="Training parameters")).to_have_attribute("aria-busy", "false")
            page.screenshot(path=os.path.join(SHOTS, "4a-path-taken.png"))

            # an action's server error reaches the user with the server's message
            panel.get_by_role("button", name="Preprocess").click()
            # only the clusters this server can start: a local hub is no Slurm site and no pod
            expect(panel.get_by_label("Cluster").locator("option")).to_have_text(
                [re.compile(r"^local"), "a scheduler I started (address)"])
            panel.get_by_placeholder("data/images").fill("no-such-data")
            panel.get_by_role("button", name="Start preprocessing").click()
            error = panel.get_by_test_id("preprocess-status")
            expect(error).to_contain_text("'no-such-data' does not exist in the workspace")
            expect(error).to_have_attribute("role", "alert")
            page.screenshot(path=os.path.join(SHOTS, "4b-server-error.png"))

            # a job that works: its own page in the main area (counts per split, the bad record)
            photo_folder(hub.user)
            panel.get_by_placeholder("data/images").fill("photos")
            panel.get_by_role("button", name="Start preprocessing").click()
            job = panel.get_by_test_id("preprocess-job")
            expect(job).to_have_attribute("data-state", "done", timeout=180_000)
            job.get_by_test_id("preprocess-open-page").click()
            job_page = page.locator(".jp-deepvre-page-widget").get_by_test_id("preprocess-page")
            expect(job_page.get_by_role("heading")).to_have_text(re.compile(r"^Preprocessing job \d+$"))
            expect(job_page.get_by_test_id("preprocess-job")).to_have_attribute("data-state", "done")
            expect(job_page.get_by_test_id("preprocess-splits")).to_contain_text("train")
            expect(job_page.get_by_test_id("preprocess-splits")).to_contain_text(re.compile(r"cat: \d+, coffee: \d+"))
            expect(job_page.get_by_test_id("preprocess-bad")).to_contain_text("broken.jpg")
            expect(job_page).to_contain_text("photos-preprocessed")
            expect(job_page.get_by_test_id("preprocess-dashboard")).to_have_count(0)  # the cluster is gone
            page.screenshot(path=os.path.join(SCREENSHOTS, "preprocessing-job.png"))

            # Serve: both URLs shown; the Swagger page loads its spec through the proxy; Stop
            panel.get_by_role("button", name="Serve").click()
            service = panel.get_by_test_id("service")
            expect(service).to_have_attribute("data-state", "ready", timeout=180_000)  # once its API answers
            swagger = service.get_by_role("link", name=re.compile(r"\/deepvre\/services\/\d+\/api$"))
            expect(service.get_by_role("link", name=re.compile(r"\/deepvre\/services\/\d+\/v2\/$"))).to_be_visible()
            docs = browser_context.new_page()
            docs.set_default_timeout(60_000)
            try:  # DEEPaaS may still be starting (the proxy answers 502 until it listens)
                wait_until_ok(docs, hub.url + swagger.get_attribute("href"))
                expect(docs.locator(".opblock-summary-path", has_text="/v2/models/colours/predict/")).to_be_visible()
                docs.screenshot(path=os.path.join(SHOTS, "5-swagger.png"))
            finally:
                docs.close()
            # the served models page in the main area: the service ready, its log's tail
            panel.get_by_role("button", name="All services: logs and stop").click()
            served = page.locator(".jp-deepvre-page-widget").get_by_test_id("served-model")
            expect(served).to_have_count(1)
            expect(served).to_have_attribute("data-state", "ready")
            expect(served).to_contain_text("colours:1.0.0")
            served.get_by_role("button", name="Show log").click()
            expect(served.get_by_test_id("served-model-log")).not_to_be_empty()
            page.screenshot(path=os.path.join(SCREENSHOTS, "served-models.png"))
            panel.get_by_role("button", name="Stop service").click()
            stop_status = panel.get_by_test_id("stop-status")
            expect(stop_status).to_contain_text("Stopped colours:", timeout=60_000)
            expect(details).to_have_attribute("aria-busy", "false")
            expect(service).to_have_attribute("data-state", "stopped")
            expect(panel.get_by_role("button", name="Stop service")).to_have_count(0)

            panel.get_by_role("button", name="Run as batch job").click()
            panel.locator('input[name="epochs"]').fill("2")
            panel.get_by_role("button", name="Start batch run").click()
            expect(panel.get_by_test_id("form-status")).to_contain_text("Started run")
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

            # another user's model: the run waits for a confirmation that names its owner and sha256
            panel.get_by_role("button", name="← All models").click()
            search.fill("Shared")
            search.press("Enter")
            panel.locator(".jp-deepvre-card", has_text="Shared colour classifier").click()
            expect(title).to_have_text("Shared colour classifier")
            for answer in ("Cancel", "Run it"):
                panel.get_by_role("button", name="Run as batch job").click()
                panel.get_by_role("button", name="Start batch run").click()
                dialog = page.get_by_test_id("trust-dialog")
                expect(dialog).to_contain_text(hub.other)
                expect(page.get_by_test_id("trust-sha256")).to_have_text(re.compile(r"^[0-9a-f]{64}$"))
                if answer == "Run it":
                    page.screenshot(path=os.path.join(SHOTS, "8-trust.png"))
                page.get_by_role("button", name=answer).click()
                expect(dialog).to_have_count(0)
                status = panel.get_by_test_id("form-status")
                expect(status).to_contain_text("Not started" if answer == "Cancel" else "Started run")
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


# the colours model's training notebook, training with deepvre's callbacks instead (progress.json:
# epochs and curves for the run page), slowly enough to be watched, and plotting its curves
FIT = "model.fit(x, y, epochs=epochs, verbose=0)\n"
assert FIT in TRAINING
CURVES = TRAINING.replace(FIT, """\
import io, time
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
from IPython.display import Image, display
from deepvre.training import checkpoints

slow = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: time.sleep(4))
history = model.fit(x[:120], y[:120], validation_data=(x[120:], y[120:]), epochs=epochs, verbose=0,
                    callbacks=checkpoints.resume_callbacks("checkpoints", "colours") + [slow])
fig, ax = plt.subplots(figsize=(4, 2.5))
ax.plot(history.history["loss"], label="loss")
ax.plot(history.history["val_loss"], label="val_loss")
ax.legend()
png = io.BytesIO()
fig.savefig(png, format="png", dpi=80)
display(Image(data=png.getvalue()))  # an image/png output: the model page shows it
""")
# the README's screenshots are rewritten only when asked (DEEPVRE_UPDATE_SCREENSHOTS=1), so a test run
# leaves the tree clean; otherwise they go with the other artifacts
SCREENSHOTS = (os.path.join(REPO, "docs", "screenshots") if os.environ.get("DEEPVRE_UPDATE_SCREENSHOTS")
               else os.path.join(SHOTS, "pages"))


def open_lab(page, hub):
    """Log in as the hub's user and reach JupyterLab (starting the server from the spawn page if needed)."""
    page.goto(f"{hub.url}/hub/login")
    page.fill("#username_input", hub.user)
    page.fill("#password_input", PASSWORD)
    page.click("#login_submit")
    page.wait_for_selector('.jp-LabShell, input[name="profile"]', timeout=180_000)
    if page.locator('input[name="profile"]').count():  # the spawn page (a running server's lab has "Restart" buttons)
        page.get_by_role("button", name="Start", exact=True).click()
    page.wait_for_selector(".jp-LabShell", timeout=180_000)


def test_model_page_and_run_page_from_the_panel(hub, colours_model, tmp_path):
    """The model page (badges, metrics table, files, usage), a batch run from it whose page shows
    epochs, curves and the log live, publishing from the run page, the new model's page with its
    lineage and plots, and a run page opened from its link. Screenshots: docs/screenshots/."""
    import shutil

    from playwright.sync_api import expect, sync_playwright

    from tests.market.conftest import make_document

    folder, doc = colours_model
    curves = tmp_path / "curves"
    shutil.copytree(folder, curves)
    make_notebook(curves / "training.ipynb", parameters='epochs = 5\nlearning_rate = 0.005\nlabel = "curves"\n',
                  body=CURVES)
    document = make_document("colours-curves", "1.0.0", title="Curve colour classifier")
    document["deepvre"]["training"] = {"notebook": "training.ipynb", "parameters": {"epochs": 5}}
    document["deepvre"]["metrics"] = {"accuracy": 0.912345678, "transfer.accuracy": 0.9, "transfer.seeds": 5}
    hub.market.publish(document, {p.name: p for p in curves.iterdir()}, visibility="public")

    os.makedirs(SCREENSHOTS, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_context(viewport={"width": 1280, "height": 860}).new_page()
        page.set_default_timeout(60_000)
        try:
            open_lab(page, hub)
            panel = page.locator("#deepvre-models")
            search = panel.get_by_label("Search models")
            tab = page.locator('li[data-id="deepvre-models"]')
            expect(tab).to_be_visible()
            for _ in range(3):  # a restored lab may show the panel already: a click would fold it away
                if search.is_visible():
                    break
                tab.click()
                page.wait_for_timeout(500)
            expect(search).to_be_visible()
            search.fill("curve")
            search.press("Enter")
            card = panel.locator(".jp-deepvre-card", has_text="Curve colour classifier")
            expect(card).to_contain_text("colours-curves:1.0.0")  # two cards with one title differ here
            panel.get_by_role("button", name="Open the page of colours-curves:1.0.0").click()

            model_page = page.get_by_test_id("model-page")
            expect(model_page.get_by_role("heading", name="Curve colour classifier")).to_be_visible()
            expect(model_page.get_by_test_id("model-ref")).to_have_text("colours-curves:1.0.0")
            expect(model_page.get_by_test_id("visibility")).to_have_text("public")
            expect(model_page).to_contain_text(f"owner {hub.user}")
            metrics = model_page.get_by_test_id("metrics-table")
            expect(metrics.locator("tr", has_text="accuracy").first).to_contain_text("0.912346")
            expect(metrics.locator("th", has_text="transfer")).to_be_visible()
            expect(metrics.locator("tr", has_text="seeds")).to_contain_text("5")
            expect(model_page.get_by_test_id("files")).to_contain_text("training.ipynb")
            expect(model_page.get_by_test_id("usage-cli")).to_have_text("deepvre market pull colours-curves:1.0.0")
            expect(model_page.get_by_test_id("no-base")).to_contain_text("No base model")
            expect(model_page.get_by_test_id("lineage")).to_contain_text("Training notebook")
            model_page.screenshot(path=os.path.join(SCREENSHOTS, "model-page.png"))

            # a batch run from the page: its page opens and follows it live
            model_page.get_by_role("button", name="Run as batch job").click()
            epochs = model_page.locator('input[name="epochs"]')
            expect(epochs).to_have_attribute("type", "number")  # typed inputs; an error shows at its field
            epochs.fill("2.5")
            expect(model_page.locator("#deepvre-error-epochs")).to_have_text('epochs must be an integer, not "2.5"')
            expect(epochs).to_have_attribute("aria-invalid", "true")
            expect(model_page.get_by_role("button", name="Start batch run")).to_be_disabled()
            epochs.fill("5")
            expect(model_page.locator("#deepvre-error-epochs")).to_have_count(0)
            model_page.get_by_role("button", name="Start batch run").click()
            run_page = page.get_by_test_id("run-page")
            expect(run_page).to_be_visible()
            expect(run_page.get_by_test_id("run-epochs")).to_contain_text(re.compile(r"epoch [2-4] of 5"),
                                                                          timeout=240_000)
            expect(run_page).to_have_attribute("data-state", "running")
            expect(run_page.get_by_test_id("run-elapsed")).to_contain_text("elapsed")
            expect(run_page.get_by_test_id("chart-loss")).to_be_visible()
            expect(run_page).to_contain_text("Executing cell")
            expect(run_page).to_contain_text("left in this fit")
            run_page.screenshot(path=os.path.join(SCREENSHOTS, "run-page-running.png"))
            expect(run_page).to_have_attribute("data-state", "done", timeout=240_000)
            expect(run_page.get_by_test_id("run-epochs")).to_contain_text("epoch 5 of 5")
            expect(run_page.get_by_test_id("run-log")).to_contain_text("curves")
            expect(run_page.get_by_test_id("metrics-table")).to_contain_text("accuracy")
            run_id = run_page.get_attribute("aria-label").removeprefix("Run ")

            # publish from the run page: it says what it published, from where, to where
            run_page.locator('input[name="publish-name"]').fill("colours-curves-ft")
            run_page.get_by_role("button", name="Publish this model").click()
            expect(run_page.get_by_test_id("publish-status")).to_contain_text(
                f"Published colours-curves-ft:1.0.0 (private) from runs/{run_id}/model.keras to http")
            run_page.screenshot(path=os.path.join(SCREENSHOTS, "run-page-done.png"))
            run_page.get_by_role("button", name="Open colours-curves-ft:1.0.0").click()
            tuned = page.locator('[data-testid="model-page"][aria-label="Model page colours-curves-ft:1.0.0"]')
            expect(tuned.get_by_test_id("visibility")).to_have_text("private")
            lineage = tuned.get_by_test_id("lineage")
            expect(lineage.get_by_role("button", name="colours-curves:1.0.0")).to_be_visible()
            expect(lineage.get_by_role("button", name=run_id)).to_be_visible()
            expect(tuned.get_by_role("img", name=re.compile(r"^plot 1"))).to_be_visible()  # the notebook's plot
            tuned.screenshot(path=os.path.join(SCREENSHOTS, "model-page-fine-tuned.png"))
            lineage.get_by_role("button", name="colours-curves:1.0.0").click()  # back to the base's page
            expect(page.locator('[aria-label="Model page colours-curves:1.0.0"]')).to_be_visible()

            # a link opens the run page in a fresh lab
            page.goto(f"{hub.url}/user/{hub.user}/lab?deepvre-run={run_id}")
            expect(page.get_by_role("heading", name=f"Run {run_id}")).to_be_visible(timeout=120_000)
            page.goto(f"{hub.url}/user/{hub.user}/lab?deepvre-model=colours-curves-ft:1.0.0")
            expect(page.locator('[aria-label="Model page colours-curves-ft:1.0.0"]')).to_be_visible(timeout=120_000)
        except Exception:
            os.makedirs(SHOTS, exist_ok=True)
            page.screenshot(path=os.path.join(SHOTS, "pages-failure.png"))
            raise
        finally:
            browser.close()
