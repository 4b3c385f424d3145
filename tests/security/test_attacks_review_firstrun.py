"""Hostile review of the first-run changes (issue 17): each test is an attack, and asserts it fails.

What runs as every user without their doing: the examples copy (``python -I -m
deepvre_hub.examples`` with each new user's uid, at the first spawn), the server extension, which
puts its environment's ``bin/`` first on every server's ``PATH`` (kernels and terminals), and the
marketplace's seed, which publishes a prepared base-model folder as the system account when that
folder's own checksums hold (so they prove it undamaged, not unplanted: only its owner keeps it
safe). The anonymous ``nobody`` and a second OS account try to put their code or files in each.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import deepvre
import deepvre_hub
import deepvre_hub.examples
import deepvre_jupyter
from deepvre.market import seed
from deepvre.science import base_models

from .test_serving import attackers  # noqa: F401  (a fixture)

REPO = Path(__file__).resolve().parents[2]

PLANT = r'''
import json, os, sys
folders, files, trees = json.loads(sys.argv[1])
out = []
for folder in folders:
    try:
        fd = os.open(os.path.join(folder, "planted-by-review.py"), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        os.close(fd)
        out.append(["create in", folder, "ACCEPTED"])
    except OSError as err:
        out.append(["create in", folder, type(err).__name__])
for path in files:
    try:
        open(path, "ab").close()
        out.append(["append to", path, "ACCEPTED"])
    except OSError as err:
        out.append(["append to", path, type(err).__name__])
for path in trees:
    try:
        os.makedirs(path)
        out.append(["make", path, "ACCEPTED"])
    except OSError as err:
        out.append(["make", path, type(err).__name__])
print(json.dumps(out))
'''


def isolated_path():
    """``sys.path`` of ``python -I`` (the examples copy's interpreter), existing folders only."""
    done = subprocess.run([sys.executable, "-I", "-c", "import json, sys; print(json.dumps(sys.path))"],
                          capture_output=True, text=True, check=True)
    return [p for p in json.loads(done.stdout) if os.path.isdir(p)]


def targets():
    modules = [deepvre_hub, deepvre_hub.examples, deepvre, deepvre_jupyter, seed, base_models]
    folders = {os.path.dirname(sys.executable), *isolated_path(), *(os.path.dirname(m.__file__) for m in modules),
               str(REPO / "notebooks"), *(str(p) for p in (REPO / "notebooks").rglob("*") if p.is_dir())}
    files = {m.__file__ for m in modules} | {os.path.join(os.path.dirname(sys.executable), "deepvre"),
                                             *(str(p) for p in (REPO / "notebooks").rglob("*.ipynb"))}
    # the image's prepared base model and notebooks: on this machine /opt/deepvre is missing, so
    # whoever could make it would have the seed publish their folder as the system account's
    trees = [seed.IMAGE_MODEL, deepvre_hub.examples.IMAGE_SOURCE]
    return sorted(folders), sorted(f for f in files if os.path.exists(f)), trees


def test_no_account_can_plant_what_every_user_runs_or_the_seed_publishes(attackers):  # noqa: F811
    folders, files, trees = targets()
    assert os.path.dirname(sys.executable) in folders and seed.IMAGE_MODEL in trees
    for who, account in attackers.items():
        done = subprocess.run(["runuser", "-u", account, "--", sys.executable, "-I", "-c", PLANT,
                               json.dumps([folders, files, trees])], capture_output=True, text=True, cwd="/")
        assert done.returncode == 0, done.stderr
        results = json.loads(done.stdout)
        assert len(results) == len(folders) + len(files) + len(trees)
        assert not [r for r in results if r[-1] == "ACCEPTED"], (who, results)
    assert not os.path.exists(seed.IMAGE_MODEL) or os.stat(seed.IMAGE_MODEL).st_uid == 0

