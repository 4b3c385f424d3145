"""``papermill --help-notebook`` shows every parameter of every use-case notebook with its type, default and help."""

import os
import re
import subprocess
import sys

import pytest

from .smoke import PARAMETERS, notebook_path

NOTEBOOKS = [notebook_path(name, name) for name in ("biology", "satellite", "security", "lattice-qcd")]
DATA_LOCATION = {"satellite.ipynb": ("day_image", "night_image")}
ENTRY = re.compile(r"^  (\w+): (.+?) \(default (.*?)\)(?:\s+(.*))?$")


def parse_help(text):
    """``{name: (type, default, help)}`` from papermill's ``--help-notebook`` output."""
    found, name = {}, None
    for line in text.splitlines():
        match = ENTRY.match(line)
        if match:
            name = match.group(1)
            found[name] = [match.group(2), match.group(3), (match.group(4) or "").strip()]
        elif name and line.startswith(" " * 20) and line.strip():
            found[name][2] = f"{found[name][2]} {line.strip()}".strip()
        else:
            name = None
    return {k: tuple(v) for k, v in found.items()}


def test_parse_help_reads_same_line_and_next_line_help():
    text = ('Parameters inferred for notebook \'x.ipynb\':\n  epochs: int (default 8)         epochs\n'
            '  base_model: str (default "m:1")\n' + " " * 34 + 'marketplace name\n  seed: int (default 0)   \n')
    assert parse_help(text) == {"epochs": ("int", "8", "epochs"), "base_model": ("str", '"m:1"', "marketplace name"),
                                "seed": ("int", "0", "")}


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: os.path.basename(p))
def test_help_notebook_shows_every_parameter_with_default_and_help(notebook):
    import papermill

    out = subprocess.run([sys.executable, "-m", "papermill", "--help-notebook", notebook],
                         capture_output=True, text=True, timeout=120, check=True).stdout
    shown = parse_help(out)
    declared = papermill.inspect_notebook(notebook)
    assert set(shown) == set(declared)
    for name, (kind, default, help_text) in shown.items():
        assert kind != "Unknown type", f"{name}: no type annotation"
        assert default == declared[name]["default"], name
        assert help_text, f"{name}: no help (a comment after the value)"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: os.path.basename(p))
def test_parameters_cell_declares_what_the_issue_asks(notebook):
    import papermill

    declared = papermill.inspect_notebook(notebook)
    # the data location: one folder, or the Earth-observation notebook's co-registered day and night images
    data = DATA_LOCATION.get(os.path.basename(notebook), ("data_dir",))
    for name in (*data, *(p for p in PARAMETERS if p != "data_dir")):
        assert name in declared, name
