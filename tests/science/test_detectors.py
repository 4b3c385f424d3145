"""The cheap detectors and the ROC/PR curves, against cases computed by hand."""

import numpy as np
import pytest

from deepvre.science import detectors

LABELS = [1, 0, 1, 0]
SCORES = [0.9, 0.8, 0.7, 0.1]


def test_roc_curve_and_auc_by_hand():
    fpr, tpr, thresholds = detectors.roc_curve(LABELS, SCORES)
    assert fpr.tolist() == [0, 0, 0.5, 0.5, 1] and tpr.tolist() == [0, 0.5, 0.5, 1, 1]
    assert thresholds.tolist() == [np.inf, 0.9, 0.8, 0.7, 0.1]
    # pairs (attack, normal): 0.9 > 0.8, 0.9 > 0.1, 0.7 < 0.8, 0.7 > 0.1 -> 3 of 4
    assert detectors.roc_auc(LABELS, SCORES) == pytest.approx(0.75)
    assert detectors.roc_auc([1, 0], [0.5, 0.5]) == pytest.approx(0.5)  # a tie counts half
    assert detectors.roc_auc([0, 1, 1, 0], [0.2, 0.4, 0.4, 0.4]) == pytest.approx(0.75)  # (1 + 0.5) / 2
    assert detectors.roc_auc([1, 1, 0], [3, 2, 1]) == 1.0 and detectors.roc_auc([1, 1, 0], [1, 2, 3]) == 0.0


def test_pr_curve_and_average_precision_by_hand():
    precision, recall, thresholds = detectors.pr_curve(LABELS, SCORES)
    assert precision.tolist() == pytest.approx([1, 0.5, 2 / 3, 0.5]) and recall.tolist() == [0.5, 0.5, 1, 1]
    # recall steps at ranks 1 and 3: 0.5 * 1 + 0.5 * 2/3
    assert detectors.average_precision(LABELS, SCORES) == pytest.approx(5 / 6)
    # a tie of an attack and a normal window is one step: precision 1/2 over the whole recall
    assert detectors.average_precision([1, 0], [1.0, 1.0]) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="both"):
        detectors.average_precision([1, 1], [0.1, 0.2])


def test_threshold_at_far_and_rates():
    normal = np.arange(100.0)
    threshold = detectors.threshold_at_far(normal, 0.1)
    assert threshold == pytest.approx(89.1)
    r = detectors.rates([1, 1, 0, 0, 0], [95, 50, 99, 10, 20], threshold)
    assert r == {"recall": 0.5, "false_alarm_rate": pytest.approx(1 / 3), "flagged": 2}
    with pytest.raises(ValueError):
        detectors.threshold_at_far(normal, 1.5)


def test_static_scores_use_the_training_windows():
    x = np.array([[0.0, 10], [2, 10], [0, 12], [2, 12], [1, 20]])
    fit = np.array([True, True, True, True, False])
    # mean (1, 11), sd (1, 1): the last window is 9 sds off in the second feature
    assert detectors.static_scores(x, fit).tolist() == pytest.approx([1, 1, 1, 1, 9])


def test_residual_scores_of_any_forecast():
    x = np.array([[1.0, 5], [3, 5], [2, 9]])
    forecast = np.array([[2.0, 5], [2, 6], [2, 5]])
    # residuals (-1, 0), (1, -1), (0, 4); scale on the first two windows: sd (1, 0.5)
    scores = detectors.residual_scores(x, forecast, np.array([True, True, False]))
    assert scores.tolist() == pytest.approx([1, 2, 8])


def test_ewma_forecasts_from_the_past_only():
    x = np.array([[0.0], [0], [4], [0], [10]])
    m = detectors.ewma_forecast(x, 0.5)
    assert m[:, 0].tolist() == [0, 0, 0, 2, 1]  # m_t = 0.5 x_{t-1} + 0.5 m_{t-1}
    scores = detectors.ewma_scores(x, np.array([True, True, True, True, False]), alpha=0.5)
    residuals = np.array([0, 0, 4, -2])
    assert scores[-1] == pytest.approx(9 / residuals.std())
    with pytest.raises(ValueError):
        detectors.ewma_forecast(x, 0)


def test_seasonal_naive_compares_with_one_period_earlier():
    x = np.array([[1.0], [2], [1], [2], [1], [5]])
    forecast = detectors.seasonal_naive_forecast(x, 2, fallback=[0.0])
    assert forecast[:, 0].tolist() == [0, 0, 1, 2, 1, 2]
    fit = np.array([True, True, True, True, True, False])
    # fitted on windows 2..4 (those with a period of history): residuals 0, 0, 0 -> the 1e-3 floor
    scores = detectors.seasonal_naive_scores(x, fit, period=2)
    assert scores[-1] == pytest.approx(3 / 1e-3) and np.all(scores[2:5] == 0)
    # a perfectly periodic series is never anomalous, whatever its level
    periodic = np.tile([[3.0, 7.0], [9.0, 1.0], [4.0, 4.0]], (5, 1))
    assert np.all(detectors.seasonal_naive_scores(periodic, np.ones(15, bool), period=3)[3:] == 0)
