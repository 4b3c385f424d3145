"""The runs page (issue 19 item 4) in a real Chromium through a real deepvre hub started here.

The hub is test_e2e's (its fixture, started for this module). The user fine-tunes a small colour
model published in the hub's marketplace (its notebook trains with deepvre's callbacks, so each run
reports its epochs), then sweeps its learning rate with ``deepvre run --sweep`` in a JupyterLab
terminal: three real runs in the user's home, as the user. The browser signs in straight to
``lab?deepvre-sweep=ID``, which opens the sweep's page in a fresh lab; closed, the panel's sweep
button opens it again in the main area: the table sorted by a metric with the best run marked
(checked against each run's metrics.json), another metric's sort, one curve per run in each chart,
the parameters with the swept one highlighted, and publishing the best run through the run page's
publish form. The panel's "Compare" opens two selected runs side by side.

Cost: the server is started through the hub's API and the sweep runs before the browser opens, so
JupyterLab loads once (each load costs Chromium tens of seconds on a loaded 2-core machine); each
run imports TensorFlow in its kernel, which is most of the sweep's time.

The attack: another hub user and an anonymous local process ask the user's server for the
comparison: neither gets it. Screenshot: docs/screenshots/runs-sweep.png (with
DEEPVRE_UPDATE_SCREENSHOTS=1; else test-artifacts/extension/pages/).
"""

import json
import os
import pwd
import shutil
import urllib.parse

import pytest
import requests

from tests.hub.hubprocess import terminal_output

from .conftest import make_notebook
from .test_e2e import ARGS, CHROMIUM, PASSWORD, SCREENSHOTS, SHOTS, hub  # noqa: F401 (hub: this module's own)

pytestmark = [pytest.mark.browser, pytest.mark.hub, pytest.mark.root]

# the model's training notebook: a tiny Keras classifier on generated colour images, trained with
# deepvre's callbacks (progress.json: the curves), its metrics measured on held-out images
SWEEP_TRAINING = """\
import json, time
import keras
import numpy as np
from deepvre.training import checkpoints

keras.utils.set_random_seed(0)
rng = np.random.default_rng(0)
y = rng.integers(0, 3, 150)
x = rng.uniform(0, 0.6, (150, 8, 8, 3)).astype("float32")
for i, c in enumerate(y):
    x[i, :, :, c] += 0.3
model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Flatten(), keras.layers.Dense(3, activation="softmax")])
model.compile(keras.optimizers.Adam(learning_rate), "sparse_categorical_crossentropy", metrics=["accuracy"])
start = time.monotonic()
model.fit(x[:110], y[:110], validation_data=(x[110:], y[110:]), epochs=epochs, verbose=0,
          callbacks=checkpoints.resume_callbacks("checkpoints", "colours"))
seconds = time.monotonic() - start
loss, accuracy = model.evaluate(x[110:], y[110:], verbose=0)
model.save("model.keras")
json.dump({"accuracy": round(float(accuracy), 4), "loss": round(float(loss), 4), "train_seconds": round(seconds, 3)},
          open("metrics.json", "w"))
json.dump({"input": {"shape": [8, 8, 3], "dtype": "float32", "scale": 1.0, "offset": 0.0},
           "labels": ["crimson", "lime", "navy"]}, open("preprocessing.json", "w"))
"""
RATES = ["0.2", "0.02", "0.002"]


def publish_sweep_model(process, colours_model, folder):
    """The user's public colour model whose notebook is SWEEP_TRAINING, in the hub's marketplace."""
    source, doc = colours_model
    for name in ("model.keras", "metrics.json", "preprocessing.json"):
        shutil.copy(source / name, folder / name)
    make_notebook(folder / "training.ipynb", body=SWEEP_TRAINING,
                  parameters="epochs = 3\nlearning_rate = 0.01\n")
    doc = {**doc, "title": "Sweepable colour classifier", "deepvre": {**doc["deepvre"], "name": "colours-sweep"}}
    doc["deepvre"]["training"] = {"notebook": "training.ipynb", "parameters": {"epochs": 3}}
    process.market.publish(doc, {p.name: p for p in folder.iterdir()}, visibility="public")


def sweep_in_a_terminal(process, token):
    """Fine-tune the model into the workspace (the panel's Fine-tune, through its API), then sweep
    its learning rate in a JupyterLab terminal; returns the runs as the server lists them."""
    server = process.server_url(process.user)
    headers = {"Authorization": f"token {token}"}
    r = requests.post(f"{server}deepvre/api/models/colours-sweep/finetune", headers=headers, timeout=120,
                      json={"parameters": {"epochs": 3}, "path": "sweep/colours.ipynb"})
    assert r.status_code == 201, r.text
    out = terminal_output(server, token, f"cd ~ && deepvre run sweep/colours.ipynb --sweep learning_rate={','.join(RATES)}"
                                         " 2>&1 | tail -6", timeout=900)
    assert "learning_rate" in out and "accuracy" in out, out  # the CLI's table
    r = requests.get(f"{server}deepvre/api/runs", headers=headers, timeout=60)
    runs = [run for run in r.json()["runs"] if run["sweep"]]
    assert [run["state"] for run in runs] == ["done"] * 3, (out, runs)
    return runs


def metrics_on_disk(user, run_id):
    with open(os.path.join(pwd.getpwnam(user).pw_dir, "runs", run_id, "metrics.json")) as fh:
        return json.load(fh)


def expected_order(ids, metrics, name, descending):
    """The table's order: stable on the runs' own order (oldest first) among equal values."""
    return sorted(ids, key=lambda i: -metrics[i][name] if descending else metrics[i][name])


def table_order(table):
    return table.locator("tbody tr").evaluate_all("rows => rows.map(r => r.dataset.runId)")


def test_a_sweep_compared_sorted_and_its_best_run_published(hub, colours_model, tmp_path):  # noqa: F811
    from playwright.sync_api import expect, sync_playwright

    (tmp_path / "model").mkdir()
    publish_sweep_model(hub, colours_model, tmp_path / "model")
    token = hub.token(hub.login(hub.user, PASSWORD), hub.user)
    os.makedirs(SCREENSHOTS, exist_ok=True)
    # the user's server (as the user's OS account; the spawn page is test_e2e's), then the sweep
    assert hub.spawn(token, hub.user).status_code in (201, 202)
    runs = sweep_in_a_terminal(hub, token)
    sweep = runs[0]["sweep"]
    ids = [r["id"] for r in runs]  # oldest first, as the page lists them before sorting
    metrics = {i: metrics_on_disk(hub.user, i) for i in ids}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_context(viewport={"width": 1600, "height": 1000}).new_page()
        page.set_default_timeout(60_000)
        try:
            # a link opens the sweep in a fresh lab: signing in goes straight to it
            link = f"/user/{hub.user}/lab?deepvre-sweep={sweep}"
            page.goto(f"{hub.url}/hub/login?next={urllib.parse.quote(link)}")
            page.fill("#username_input", hub.user)
            page.fill("#password_input", PASSWORD)
            page.click("#login_submit")
            page.wait_for_selector(".jp-LabShell", timeout=180_000)
            runs_page = page.get_by_test_id("runs-page")
            expect(runs_page.get_by_role("heading", name=f"Sweep {sweep}")).to_be_visible(timeout=120_000)
            page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab", has_text=f"Sweep {sweep}").locator(
                ".lm-TabBar-tabCloseIcon").click()
            expect(runs_page).to_have_count(0)

            # the panel's button for the sweep opens its page again
            panel = page.locator("#deepvre-models")
            tab = page.locator('li[data-id="deepvre-models"]')
            for _ in range(3):  # a restored lab may show the panel already: a click would fold it away
                if panel.is_visible():
                    break
                tab.click()
                page.wait_for_timeout(500)
            panel.get_by_role("button", name=f"Sweep {sweep} (3 runs)").click()

            expect(runs_page.get_by_role("heading", name=f"Sweep {sweep}")).to_be_visible()
            expect(runs_page).to_contain_text("swept: learning_rate")
            table = runs_page.get_by_test_id("runs-table")
            expect(table.locator("tbody tr")).to_have_count(3)
            # sorted by the first metric, accuracy, best (highest) first; the best run is marked
            by_accuracy = expected_order(ids, metrics, "accuracy", descending=True)
            assert table_order(table) == by_accuracy, (table_order(table), metrics)
            expect(table.locator("tr[data-best]")).to_have_attribute("data-run-id", by_accuracy[0])
            expect(table.locator("tr[data-best]")).to_contain_text("★ best accuracy")
            expect(table.get_by_role("columnheader", name="accuracy")).to_have_attribute("aria-sort", "descending")
            for run_id in ids:
                row = table.locator(f'tr[data-run-id="{run_id}"]')
                expect(row.locator('td[data-metric="loss"]')).to_have_attribute("title", str(metrics[run_id]["loss"]))
            # the swept parameter is the highlighted column, with each run's value
            expect(table.locator("thead th.jp-deepvre-differs")).to_have_text(["learning_rate"])
            assert sorted(table.locator("tbody td.jp-deepvre-differs").all_inner_texts()) == sorted(RATES)
            parameters = runs_page.get_by_test_id("runs-parameters")
            expect(parameters.locator("tr[data-differs]")).to_have_count(1)
            expect(parameters.locator("tr", has_text="epochs")).to_contain_text("3 (all runs)")
            # one chart per logged metric, one line per run, the legend names each run by its rate
            for metric in ("loss", "accuracy", "val_loss", "val_accuracy"):
                chart = runs_page.get_by_test_id(f"chart-{metric}")
                expect(chart.locator("polyline")).to_have_count(3)
                for rate in RATES:
                    expect(chart.locator(".jp-deepvre-legend")).to_contain_text(f"learning_rate={float(rate)}")
            expect(runs_page.get_by_test_id("later-fits")).to_have_count(0)  # one fit each: the whole training
            runs_page.screenshot(path=os.path.join(SCREENSHOTS, "runs-sweep.png"))

            # another metric: loss, best (lowest) first; a second click turns it round
            table.get_by_test_id("sort-loss").click()
            by_loss = expected_order(ids, metrics, "loss", descending=False)
            expect(table.get_by_role("columnheader", name="loss")).to_have_attribute("aria-sort", "ascending")
            assert table_order(table) == by_loss
            expect(table.locator("tr[data-best]")).to_have_attribute("data-run-id", by_loss[0])
            expect(table.locator("tr[data-best]")).to_contain_text("★ best loss")
            table.get_by_test_id("sort-train_seconds").click()
            assert table_order(table) == expected_order(ids, metrics, "train_seconds", descending=False)
            table.get_by_test_id("sort-loss").click()
            table.get_by_test_id("sort-loss").click()
            expect(table.get_by_role("columnheader", name="loss")).to_have_attribute("aria-sort", "descending")
            assert table_order(table) == expected_order(ids, metrics, "loss", descending=True)
            expect(table.locator("tr[data-best]")).to_have_attribute("data-run-id", by_loss[0])  # still the lowest

            # from the best run to publishing it: the run page's own form
            best = by_loss[0]
            publish = runs_page.get_by_role("region", name="Publish the best run")
            expect(publish.get_by_test_id("publishing-run")).to_contain_text(f"{best}: the best loss")
            publish.locator('input[name="publish-name"]').fill("colours-swept")
            publish.get_by_role("button", name="Publish this model").click()
            expect(publish.get_by_test_id("publish-status")).to_contain_text(
                f"Published colours-swept:1.0.0 (private) from runs/{best}/model.keras to http")
            runs_page.screenshot(path=os.path.join(SHOTS, "runs-sweep-published.png"))

            # two runs picked in the panel, side by side
            for run_id in by_loss[1:]:
                panel.get_by_label(f"Select run {run_id} to compare").check()
            panel.get_by_role("button", name="Compare 2 runs").click()
            pair = page.locator('[data-testid="runs-page"][aria-label="2 runs side by side"]')
            expect(pair.get_by_test_id("runs-table").locator("tbody tr")).to_have_count(2)
            expect(pair.get_by_test_id("chart-loss").locator("polyline")).to_have_count(2)
        except Exception:
            os.makedirs(SHOTS, exist_ok=True)
            page.screenshot(path=os.path.join(SHOTS, "runs-failure.png"))
            raise
        finally:
            browser.close()
    published = hub.market.show("colours-swept")
    assert published["owner"] == hub.user and published["visibility"] == "private"
    assert published["metadata"]["deepvre"]["metrics"]["loss"] == metrics[best]["loss"]
    assert published["metadata"]["deepvre"]["base_model"] == {"name": "colours-sweep", "version": "1.0.0"}

    # the attack: another user's token, and an anonymous local process, ask for the comparison
    url = f"{hub.server_url(hub.user)}deepvre/api/compare"
    own = requests.get(url, params={"sweep": sweep}, headers={"Authorization": f"token {token}"}, timeout=60)
    assert own.status_code == 200 and len(own.json()["runs"]) == 3
    other = hub.token(hub.login(hub.other, PASSWORD), hub.other)
    for headers in ({"Authorization": f"token {other}"}, {}):
        r = requests.get(url, params={"sweep": sweep}, headers=headers, timeout=60, allow_redirects=False)
        assert r.status_code in (302, 403), (headers.keys(), r.status_code, r.text[:300])
        assert sweep not in r.text and "metrics" not in r.text
