"""The Models browser as ipywidgets, for classic notebooks, Voila and Binder.

    from deepvre_jupyter.widgets import MarketplaceBrowser
    MarketplaceBrowser()

Search, cards, details, Fine-tune and Run: the same functions as the JupyterLab panel's
server extension (``deepvre_jupyter.backends``) and the runner's notebook parameters
(``deepvre.runs.parameters``: a box's text is read as ``deepvre run -p`` reads it). User text is
escaped before it goes into HTML.
"""

import html
import os

import ipywidgets as w

from deepvre.runs import parameters
from deepvre.site.settings import server_sections

from . import backends, cards, paths


def card_html(card):
    """A model card as HTML, every user-supplied string escaped."""
    e = lambda v: html.escape(str(v))
    meta = " · ".join(e(x) for x in (card["use_case"], card["version"] and f"v{card['version']}",
                                      card["owner"] and f"by {card['owner']}") if x)
    metrics = " · ".join(f"{e(k)} {e(v)}" for k, v in (card["metrics"] or {}).items())
    tags = " ".join(f"<code>{e(t)}</code>" for t in card["tags"])
    return (f"<b>{e(card['title'] or card['name'])}</b><br>{e(card['summary'])}<br>"
            f"<small>{meta}</small><br><small>{metrics}</small><br>{tags}")


class MarketplaceBrowser(w.VBox):
    """Search the marketplace, read a model, fine-tune it or run it as a batch job."""

    def __init__(self, workspace=".", notebooks_dir="fine-tune", runs_dir="runs"):
        self.workspace = os.path.abspath(workspace)
        self.notebooks_dir, self.runs_dir = notebooks_dir, runs_dir
        self.query = w.Text(placeholder="Search models", description="Search")
        self.trainable = w.Checkbox(description="trainable only")
        self.search_button = w.Button(description="Search", icon="search")
        self.status = w.HTML()
        self.results = w.VBox()
        self.details = w.VBox()
        self.search_button.on_click(lambda _: self.search())
        super().__init__([w.HBox([self.query, self.trainable, self.search_button]), self.status,
                          self.results, self.details])
        self.search()

    def _say(self, kind, text):
        colour = {"error": "#b00020", "success": "#1b5e20"}.get(kind, "inherit")
        self.status.value = f'<span style="color:{colour}">{html.escape(text)}</span>'

    def search(self):
        try:
            records = backends.search_models(self.query.value, trainable=self.trainable.value or None)
        except Exception as err:  # noqa: BLE001  (shown, never silent)
            self._say("error", str(err))
            return
        boxes = []
        for record in records:
            card = cards.model_card(record)
            button = w.Button(description=f"Open {card['name']}")
            button.on_click(lambda _, r=record: self.show_model(r))
            boxes.append(w.VBox([w.HTML(card_html(card)), button]))
        self.results.children = boxes
        self._say("success", f"{len(records)} model(s)" if records else
                  "No models match. Clear the search, or publish one with `deepvre market publish`.")

    def show_model(self, record):
        details = cards.model_details(backends.show_model(record["name"], record.get("version")))
        description = w.HTML(f"<pre style='white-space:pre-wrap'>{html.escape(details['description'])}</pre>")
        declared = {}
        if details["trainable"]:
            nb = backends.training_notebook(details["name"], details["version"], self._cache(details))
            declared = parameters.inspect(nb)
        inputs = {name: w.Text(value=parameters.as_text(f), description=name) for name, f in declared.items()}
        fine_tune, run = w.Button(description="Fine-tune"), w.Button(description="Run as batch job")
        fine_tune.on_click(lambda _: self._act(lambda: self.fine_tune(details, declared, inputs)))
        run.on_click(lambda _: self._act(lambda: self.run(details, declared, inputs)))
        self.details.children = [w.HTML(card_html(details)), description, *inputs.values(),
                                 w.HBox([fine_tune, run])]
        self.last_inputs = inputs

    def _cache(self, details):
        return os.path.join(self.workspace, ".deepvre-cache", details["name"], details["version"])

    @staticmethod
    def _values(declared, inputs):
        """The boxes' values that differ from the defaults, parsed by their types and checked."""
        values = parameters.from_texts(declared, {name: box.value for name, box in inputs.items()})
        return parameters.check(declared, {n: v for n, v in values.items() if v != declared[n]["value"]})

    def _act(self, action):
        try:
            self._say("success", action())
        except Exception as err:  # noqa: BLE001  (shown in the status line)
            self._say("error", f"{type(err).__name__}: {err}")

    def fine_tune(self, details, declared, inputs, values=None):
        """Write the parameterized notebook into the workspace; return a message with its path."""
        values = self._values(declared, inputs) if values is None else values
        source = backends.training_notebook(details["name"], details["version"], self._cache(details))
        folder = paths.resolve(self.workspace, self.notebooks_dir)
        os.makedirs(folder, exist_ok=True)
        dest = paths.free_name(os.path.join(folder, f"{details['name']}-{os.path.basename(source)}"))
        parameters.inject(source, dest, values, {"model": details["name"], "version": details["version"]})
        self.last_notebook = dest
        return f"Wrote {paths.relative(self.workspace, dest)}"

    def run(self, details, declared, inputs):
        """Fine-tune, then run that notebook as it is (read once, parameterized once)."""
        values = self._values(declared, inputs)
        self.fine_tune(details, declared, inputs, values)
        site = server_sections()  # what the hub handed this server (and so its kernels)
        run = backends.start_run(self.last_notebook, values, paths.resolve(self.workspace, self.runs_dir),
                                 site.get("runs_backend") or "local", declared=declared, injected=True,
                                 slurm=site.get("slurm"))
        self.last_run = run
        return f"Started run {run.id}; follow it with `deepvre runs show {run.id}`"
