"""The lattice notebook's split cannot leak: no Markov chain in two splits, and the test betas are
never trained on (interpolation), for the notebook's own design (its parameter defaults and its
smoke values) and for chains written to disk and read back as the notebook does."""

import ast
import json
import os

import numpy as np
import pytest

from deepvre.science import evaluation
from deepvre.science import lattice_study as study
from tests.prereqs import REPO

NOTEBOOK = os.path.join(REPO, "notebooks", "lattice-qcd", "lattice-qcd.ipynb")


def notebook_code():
    with open(NOTEBOOK) as fh:
        return [("".join(c["source"]), c.get("metadata", {}).get("tags", [])) for c in json.load(fh)["cells"]
                if c["cell_type"] == "code"]


def defaults():
    """The parameters cell's values (full mode)."""
    source = next(s for s, tags in notebook_code() if "parameters" in tags)
    return {node.target.id: ast.literal_eval(node.value) for node in ast.parse(source).body
            if isinstance(node, ast.AnnAssign)}


def design(betas, test_betas, chains, test_chains):
    names = [study.chain_id(b, k) for b in betas for k in range(chains)]
    names += [study.chain_id(b, k) for b in test_betas for k in range(test_chains)]
    values = [b for b in betas for _ in range(chains)] + [b for b in test_betas for _ in range(test_chains)]
    return names, values


FULL = defaults()
SMOKE = {"betas": [1.0, 2.0, 3.0], "test_betas": [1.5, 2.5], "chains": 2, "test_chains": 1}


@pytest.mark.parametrize("mode", [FULL, SMOKE], ids=["full", "smoke"])
@pytest.mark.parametrize("seed", range(5))
def test_no_chain_in_two_splits_and_test_betas_held_out(mode, seed):
    names, betas = design(mode["betas"], mode["test_betas"], mode["chains"], mode["test_chains"])
    split = study.split_chains(names, betas, mode["test_betas"], val_fraction=1 / mode["chains"], seed=seed)
    checked = study.check_split(split, names, betas)
    assert set(checked["betas"]["test"]) == set(mode["test_betas"])
    assert not set(checked["betas"]["test"]) & set(checked["betas"]["train"] + checked["betas"]["val"])
    assert set(checked["betas"]["train"]) == set(checked["betas"]["val"]) == set(mode["betas"])
    assert checked["chains"]["test"] == len(mode["test_betas"]) * mode["test_chains"]
    # every training beta keeps chains for training and one for validation
    for beta in mode["betas"]:
        parts = [s for s, b in zip(split, betas) if b == beta]
        assert parts.count("val") == 1 and parts.count("train") == mode["chains"] - 1
    # per configuration (what the pipeline sees): the same split for every configuration of a chain
    items = [(c, b, s) for c, b, s in zip(names, betas, split) for _ in range(3)]
    per_item = study.split_chains([c for c, _, _ in items], [b for _, b, _ in items], mode["test_betas"],
                                  val_fraction=1 / mode["chains"], seed=seed)
    assert per_item == [s for _, _, s in items]
    evaluation.check_no_leakage(per_item, [c for c, _, _ in items])


def test_the_full_design_interpolates():
    train, test = sorted(FULL["betas"]), sorted(FULL["test_betas"])
    assert min(train) < min(test) and max(test) < max(train), "held-out betas lie inside the training range"
    assert not set(train) & set(test)


def test_a_leak_is_caught():
    names, betas = design([1.0, 2.0], [1.5], 2, 1)
    split = study.split_chains(names, betas, [1.5])
    bad = list(split)
    bad[0] = "test"  # a training chain's beta in the test split
    with pytest.raises(evaluation.Leakage, match="beta"):
        study.check_split(bad, names, betas)
    with pytest.raises(evaluation.Leakage, match="two splits"):  # one chain, configurations in two splits
        study.check_split(["train", "val", *split[1:]], [names[0], *names], [betas[0], *betas])
    with pytest.raises(ValueError, match="two betas"):
        study.split_chains(["a", "a"], [1.0, 2.0], [])


def test_chains_on_disk_split_as_the_notebook_does(tmp_path):
    records = study.generate_chains(tmp_path, 4, [1.0, 2.0], 2, 3, seed=0, n_therm=2, n_skip=1)
    records += study.generate_chains(tmp_path, 4, [1.5], 1, 3, seed=0, n_therm=2, n_skip=1)
    found = study.chains_in(tmp_path)
    assert sorted(found) == sorted(r["chain"] for r in records) and all(len(f) == 3 for f in found.values())
    betas = [study.beta_of_chain(files) for files in found.values()]
    assert betas == [r["beta"] for r in sorted(records, key=lambda r: r["chain"])]
    split = study.split_chains(list(found), betas, [1.5], val_fraction=0.5, seed=0)
    study.check_split(split, list(found), betas)
    assert [s for s, b in zip(split, betas) if b == 1.5] == ["test"]
    # independent chains: distinct seeds, distinct configurations
    seeds = {study.chain_seed(0, 4, r["beta"], int(r["chain"][-2:])) for r in records}
    assert len(seeds) == len(records)
    from deepvre.pipelines.lattice_io import read_config

    first = [read_config(files[0])[0] for files in found.values()]
    assert all(not np.allclose(a, b) for i, a in enumerate(first) for b in first[i + 1:])


def test_the_notebook_uses_this_split_and_checks_it():
    source = "\n".join(s for s, _ in notebook_code())
    for call in ("study.split_chains(", "study.check_split(", "study.chains_in(", "study.invert_plaquette(",
                 "evaluation.comparison(", "study.plaquette_check("):
        assert call in source, call
    assert '"split": (1.0, 0.0, 0.0)' in source  # the pipeline does not split on its own
    assert "market.show(" not in source and "NotFound" not in source  # the base is trained here, every run
