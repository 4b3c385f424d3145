"""The security notebook's split cannot leak: whole UTC days go to train, val or test (no day in two
splits), for the seeds and day counts of smoke and full mode; attack windows are marked exactly."""

import json
import os

import numpy as np
import pytest

from deepvre.science import evaluation, forecast
from tests.prereqs import REPO

START = 1770000000 - 1770000000 % 86400  # a UTC midnight (2026-02-02, a Monday)


def windows(days, window=300, seq_len=12):
    """Start times of the predicted windows of ``days`` days (the first ``seq_len`` have no target)."""
    return START + np.arange(seq_len, days * 86400 // window) * window


@pytest.mark.parametrize("days", [3, 14], ids=["smoke", "full"])
def test_no_day_in_two_splits(days):
    t = windows(days)
    groups = forecast.days_of(t)
    assert len(set(groups)) == days and groups[0] == "2026-02-02"
    for seed in range(5):
        names = forecast.split_days(t, seed)
        counts = evaluation.check_no_leakage(names, groups)
        assert min(counts.values()) >= 1 and sum(counts.values()) == days
        for day in set(groups):  # every window of a day in one split
            assert len({n for n, g in zip(names, groups) if g == day}) == 1
    if days == 14:  # weekdays and weekend days in training and test alike
        names = np.array(forecast.split_days(t, 0))
        weekend = (t // 86400 - START // 86400) % 7 >= 5
        assert {"train", "test"} <= set(names[weekend]) and {"train", "test"} <= set(names[~weekend])
        assert len(set(forecast.split_days(t, 0))) == 3 and forecast.split_days(t, 0) != forecast.split_days(t, 1)


def test_a_day_in_two_splits_is_caught():
    t = windows(3)
    names = forecast.split_days(t, 0)
    groups = forecast.days_of(t)
    broken = list(names)
    broken[0] = "test" if names[0] != "test" else "train"
    with pytest.raises(evaluation.Leakage):
        evaluation.check_no_leakage(broken, groups)


def test_attack_mask_marks_overlapping_windows_and_lookback():
    t = np.arange(0, 1000, 100)
    attacks = [{"start_ts": 250, "end_ts": 450}]
    assert np.flatnonzero(forecast.attack_mask(t, 100, attacks)).tolist() == [2, 3, 4]
    # with 2 windows of inputs, sequences predicting 500 and 600 read attacked windows too
    assert np.flatnonzero(forecast.attack_mask(t, 100, attacks, lookback=200)).tolist() == [2, 3, 4, 5, 6]


def test_the_notebook_uses_this_split_and_checks_it():
    with open(os.path.join(REPO, "notebooks", "security", "security.ipynb")) as fh:
        source = "".join("".join(c["source"]) for c in json.load(fh)["cells"] if c["cell_type"] == "code")
    assert "forecast.split_days(" in source and "evaluation.check_no_leakage(" in source
    assert '"split": [1.0, 0.0, 0.0]' in source  # the pipeline does not split by time on its own
    assert all(w in source for w in ("evaluation.comparison(", "detectors.static_scores(", "detectors.ewma_scores(",
                                     "detectors.seasonal_naive_scores("))
