""""Rank base models for my data" in a real Chromium through a real deepvre hub started here.

The user logs in, starts a server (as the user's own OS account), preprocesses nothing by hand: a data
set made by the real ``images`` pipeline is put in the home; the panel's action ranks the catalog on
it (a job on the user's Dask LocalCluster, with progress) and shows the table with the readings. The
catalog is the hub's marketplace: the user's public model is ranked with its random floor; another
user's private model, which would fit the data, is never named. The fine-tune form of a model whose
notebook takes ``base_model`` then offers the ranking, best first, with the score.
Screenshots: test-artifacts/extension/.
"""

import os
import pwd
import secrets
import shutil
import subprocess

import numpy as np
import pytest

from tests.hub.hubprocess import HubProcess
from tests.prereqs import require, require_proxy, require_root

from .conftest import make_notebook
from .test_e2e import ARGS, CHROMIUM, PASSWORD, PROFILES, SHOTS, open_lab  # open_lab logs in with PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.hub, pytest.mark.root]
TRAINING = 'print("fine-tuning", base_model, base_version, epochs)\n'


@pytest.fixture(scope="module")
def ranked_hub(tmp_path_factory, colours_model):
    """A real hub whose marketplace holds the user's public colour model (its notebook takes
    ``base_model``) and another user's private copy."""
    require_root()
    require_proxy()
    require(os.path.exists(CHROMIUM), "needs Debian's chromium (apt-get install chromium)")
    from deepvre.market.client import HTTPMarket

    folder = tmp_path_factory.mktemp("ranked-model")
    source, doc = colours_model
    for name in ("model.keras", "metrics.json", "preprocessing.json"):
        shutil.copy(source / name, folder / name)
    make_notebook(folder / "training.ipynb", body=TRAINING,
                  parameters='base_model = "mobilenet-v2-imagenet"\nbase_version = "1.0.0"\nepochs = 1\n')
    doc = {**doc, "title": "Rankable colour classifier", "deepvre": {**doc["deepvre"], "name": "colours-ranked"}}
    process = HubProcess({"profiles": PROFILES}, tmp_path_factory.mktemp("rank-hub") / "state")
    process.user, process.other = f"rk{secrets.token_hex(3)}", f"rk{secrets.token_hex(3)}o"
    try:
        process.start()
        admin = process.login(process.admin, process.admin_password)
        for name in (process.user, process.other):
            assert process.signup(name, PASSWORD).status_code == 200
            process.authorize(admin, name)
        process.admin_token = process.token(admin)
        market = f"{process.url}/services/marketplace/"
        user_token = process.token(process.login(process.user, PASSWORD), process.user)
        HTTPMarket(market, user_token).publish(doc, {p.name: p for p in folder.iterdir()}, visibility="public")
        other_token = process.token(process.login(process.other, PASSWORD), process.other)
        private = {**doc, "title": "Someone else's", "deepvre": {**doc["deepvre"], "name": "others-private",
                                                                  "visibility": "private"}}
        HTTPMarket(market, other_token).publish(private, {p.name: p for p in folder.iterdir()}, visibility="private")
        yield process
    finally:
        try:
            if getattr(process, "admin_token", None) and process.server_model(process.admin_token, process.user):
                process.stop_server(process.admin_token, process.user)
        finally:
            process.stop()
            for name in (process.user, process.other):
                subprocess.run(["userdel", "-r", name], capture_output=True, check=False)


def colour_data(root):
    """8x8 colour images preprocessed by the real pipeline into ``root/colours-data``."""
    from PIL import Image

    from deepvre.pipelines import preprocess
    from tests.market.conftest import LABELS, colour_images

    x, y = colour_images(90, seed=2)
    for n, (image, label) in enumerate(zip(x, y)):
        folder = root / "photos" / LABELS[label]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image.astype(np.uint8)).save(folder / f"{n:03d}.png")
    preprocess("images", str(root / "photos"), str(root / "colours-data"), {"size": 8, "split": (0.6, 0.2, 0.2)},
               cluster="local", n_workers=1, progress=False)
    return root / "colours-data"


def test_rank_base_models_from_the_panel_and_pick_one_in_the_fine_tune_form(ranked_hub, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    data = colour_data(tmp_path)
    os.makedirs(SHOTS, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_context(viewport={"width": 1500, "height": 1000}).new_page()
        page.set_default_timeout(60_000)
        try:
            open_lab(page, ranked_hub)
            # the data set in the user's home, the user's own (the server runs as that account)
            home = pwd.getpwnam(ranked_hub.user)
            target = os.path.join(home.pw_dir, "colours-data")
            shutil.copytree(data, target)
            subprocess.run(["chown", "-R", f"{home.pw_uid}:{home.pw_gid}", target], check=True)

            page.click('li[data-id="deepvre-models"]')
            panel = page.locator("#deepvre-models")
            panel.get_by_role("button", name="Rank base models for my data").click()
            form = panel.get_by_role("form", name="Rank base models")
            form.get_by_placeholder("data/images-preprocessed").fill("no-such-folder")
            form.get_by_role("button", name="Start ranking").click()
            expect(form.get_by_test_id("ranking-status")).to_contain_text("'no-such-folder' does not exist")
            form.get_by_placeholder("data/images-preprocessed").fill("colours-data")
            form.get_by_role("button", name="Start ranking").click()
            job = form.get_by_test_id("ranking-job")
            expect(job).to_be_visible()
            page.screenshot(path=os.path.join(SHOTS, "rank-1-running.png"))
            expect(job).to_have_attribute("data-state", "done", timeout=600_000)
            table = form.get_by_test_id("ranking-table")
            rows = table.locator("tbody tr")
            expect(rows).to_have_count(2)
            expect(rows.locator("td:nth-child(2)")).to_contain_text(["colours-ranked:1.0.0", "random:colours-ranked:1.0.0"])
            expect(table).to_contain_text("random network")
            expect(table).to_contain_text("the floor")
            assert "others-private" not in form.inner_text()
            page.screenshot(path=os.path.join(SHOTS, "rank-2-table.png"))

            # the fine-tune form offers the ranking for base_model, with the score
            panel.get_by_role("button", name="Rank base models for my data").click()  # fold the form away
            search = panel.get_by_label("Search models")
            search.fill("Rankable")
            search.press("Enter")
            panel.locator(".jp-deepvre-card", has_text="Rankable colour classifier").click()
            panel.get_by_role("button", name="Fine-tune").click()
            choice = panel.get_by_test_id("ranked-bases")
            expect(choice.locator("option").nth(1)).to_contain_text("1. colours-ranked:1.0.0 · LogME")
            choice.select_option(index=1)
            expect(panel.locator('input[name="base_model"]')).to_have_value("colours-ranked")
            expect(panel.locator('input[name="base_version"]')).to_have_value("1.0.0")
            page.screenshot(path=os.path.join(SHOTS, "rank-3-fine-tune.png"))
        finally:
            browser.close()
