""""Rank base models for my data" in a real Chromium through a real deepvre hub started here.

The hub is test_e2e's (its fixture, started for this module). The user logs in and starts a server
(as the user's own OS account); a data set made by the real ``images`` pipeline is put in the home; the panel's action ranks the catalog on
it (a job on the user's Dask LocalCluster, with progress) and shows the table with the readings. The
catalog is the hub's marketplace: the public colour models are ranked with their random floor; another
user's private model, which would fit the data, is never named. The fine-tune form of a model whose
notebook takes ``base_model`` then offers the ranking, best first, with the score.
Screenshots: test-artifacts/extension/.
"""

import os
import pwd
import shutil
import subprocess

import pytest

from .conftest import make_notebook
from .test_e2e import ARGS, CHROMIUM, PASSWORD, SHOTS, hub, open_lab  # noqa: F401 (hub: a hub of this module's own)
from .test_rankings import colour_data_set

pytestmark = [pytest.mark.browser, pytest.mark.hub, pytest.mark.root]
TRAINING = 'print("fine-tuning", base_model, base_version, epochs)\n'


def publish_models(process, colours_model, folder):
    """Into the hub's marketplace: the user's public colour model whose notebook takes ``base_model``,
    and another user's private copy (which would fit the data too)."""
    from deepvre.market.client import HTTPMarket

    source, doc = colours_model
    for name in ("model.keras", "metrics.json", "preprocessing.json"):
        shutil.copy(source / name, folder / name)
    make_notebook(folder / "training.ipynb", body=TRAINING,
                  parameters='base_model = "mobilenet-v2-imagenet"\nbase_version = "1.0.0"\nepochs = 1\n')
    doc = {**doc, "title": "Rankable colour classifier", "deepvre": {**doc["deepvre"], "name": "colours-ranked"}}
    files = {p.name: p for p in folder.iterdir()}
    process.market.publish(doc, files, visibility="public")
    other = HTTPMarket(process.market.url, process.token(process.login(process.other, PASSWORD), process.other))
    private = {**doc, "title": "Someone else's", "deepvre": {**doc["deepvre"], "name": "others-private",
                                                              "visibility": "private"}}
    other.publish(private, files, visibility="private")


def test_rank_base_models_from_the_panel_and_pick_one_in_the_fine_tune_form(hub, colours_model, tmp_path):  # noqa: F811
    from playwright.sync_api import expect, sync_playwright

    (tmp_path / "model").mkdir()
    publish_models(hub, colours_model, tmp_path / "model")
    data = colour_data_set(tmp_path, seed=2)
    os.makedirs(SHOTS, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_context(viewport={"width": 1500, "height": 1000}).new_page()
        page.set_default_timeout(60_000)
        try:
            open_lab(page, hub)
            # the data set in the user's home, the user's own (the server runs as that account)
            home = pwd.getpwnam(hub.user)
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
            rows = table.locator("tbody tr[data-floor]")  # each model's numbers; its reading on the row below
            # the hub's catalog as the user sees it: test_e2e's two public colour models and the user's own
            expect(rows).to_have_count(4)
            expect(table).to_contain_text("colours-ranked:1.0.0")
            expect(table).to_contain_text("colours-shared:1.0.0")
            expect(table).to_contain_text("random:colours:1.0.0")
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
            expect(choice.locator("option")).to_have_count(4)  # "choose…" and the three catalog models, no floor
            options = choice.locator("option").all_inner_texts()
            assert [o.split(".")[0] for o in options[1:]] == ["1", "2", "3"], options
            assert all("· LogME" in o and "(random network" in o for o in options[1:]), options
            choice.select_option(index=next(i for i, o in enumerate(options) if "colours-ranked:1.0.0" in o))
            expect(panel.locator('input[name="base_model"]')).to_have_value("colours-ranked")
            expect(panel.locator('input[name="base_version"]')).to_have_value("1.0.0")
            page.screenshot(path=os.path.join(SHOTS, "rank-3-fine-tune.png"))
        finally:
            browser.close()
