"""The ipywidgets browser: search, escaped cards, details and Fine-tune on a real local catalog."""

import nbformat

from deepvre_jupyter.widgets import MarketplaceBrowser, card_html


def test_card_html_escapes_user_text():
    card = {"name": "x", "title": "<script>alert(1)</script>", "summary": "<img onerror=a>", "use_case": "b",
            "version": "1", "owner": "<b>o</b>", "metrics": {"<i>": 1}, "tags": ["<t>"]}
    out = card_html(card)
    assert "<script>" not in out and "<img" not in out and "<b>o</b>" not in out and "<i>" not in out
    assert "&lt;script&gt;" in out


def test_browser_searches_opens_and_fine_tunes(market_dir, tmp_path):
    browser = MarketplaceBrowser(workspace=str(tmp_path))
    browser.query.value = "colour"
    browser.search()
    assert len(browser.results.children) == 1 and "Tiny colour classifier" in browser.results.children[0].children[0].value
    browser.results.children[0].children[1].click()
    description = browser.details.children[1].value
    assert "&lt;script&gt;" in description and "<script>" not in description
    browser.last_inputs["epochs"].value = "5"
    browser.details.children[-1].children[0].click()  # Fine-tune
    assert "Wrote fine-tune/colours-training.ipynb" in browser.status.value, browser.status.value
    nb = nbformat.read(str(tmp_path / "fine-tune" / "colours-training.ipynb"), as_version=4)
    assert any("epochs = 5" in c.source for c in nb.cells if "injected-parameters" in c.metadata.get("tags", []))
    browser.last_inputs["epochs"].value = "many"
    browser.details.children[-1].children[0].click()
    assert "many" in browser.status.value
    assert "b00020" in browser.status.value  # the error state, with the message
