"""Cheap anomaly detectors on per-window traffic features, and the curves that compare any detector's scores.

The detectors a referee tries before an LSTM, each giving one score per window (higher: more anomalous):

* :func:`static_scores`: distance from the training mean, the largest ``|x - mean| / sd`` over features,
  with mean and sd of the training-normal windows (a static threshold on every feature at once);
* :func:`ewma_scores`: distance from an exponentially weighted moving average of the past windows,
  in units of the residuals' sd on training-normal windows;
* :func:`seasonal_naive_scores`: distance from the same time one period earlier (a day: ``288``
  five-minute windows; a week: ``2016``), in units of the residuals' sd on training-normal windows.

All three are :func:`residual_scores` of a forecast; so is a learned forecaster's (the LSTM's), which
makes the comparison one of forecasts, not of scoring rules.

``values`` is ``(windows, features)`` in time order, one row per window with no gaps (as
``forecast.dense_series`` writes it); ``fit`` is a boolean mask of the windows the scale is estimated on
(normal windows of the training days). The EWMA and seasonal forecasts read only earlier windows, as an
online detector would.

:func:`roc_curve`, :func:`roc_auc`, :func:`pr_curve` and :func:`average_precision` compare scores with
labels (``True``: attack window); :func:`threshold_at_far` picks the threshold that lets a given share
of normal (validation) windows through, and :func:`rates` counts what a threshold catches. All numpy.
"""

import numpy as np


def _scale(residuals, fit):
    """Per-feature sd of ``residuals`` over the ``fit`` windows (at least 1e-3)."""
    r = np.asarray(residuals, float)[np.asarray(fit, bool)]
    r = r[np.all(np.isfinite(r), axis=1)]
    if not len(r):
        raise ValueError("no training-normal windows to estimate a scale on")
    return np.maximum(r.std(axis=0), 1e-3)


def _max_z(residuals, scale):
    return np.max(np.abs(residuals) / scale, axis=1)


def residual_scores(values, forecast, fit):
    """The score every detector here shares: the largest ``|x - forecast|`` over features, in sds of the
    residuals on the ``fit`` windows. Any forecaster (an LSTM's predictions too) scores windows this way."""
    residuals = np.asarray(values, float) - np.asarray(forecast, float)
    return _max_z(residuals, _scale(residuals, fit))


def static_scores(values, fit):
    """``max_f |x_f - mean_f| / sd_f`` with the mean and sd of the ``fit`` windows."""
    x = np.asarray(values, float)
    fit = np.asarray(fit, bool)
    return residual_scores(x, x[fit].mean(axis=0), fit)


def ewma_forecast(values, alpha):
    """The EWMA of the windows before each one: ``m_0 = x_0``, ``m_t = alpha x_{t-1} + (1 - alpha) m_{t-1}``."""
    if not 0 < alpha <= 1:
        raise ValueError(f"alpha must be in (0, 1], not {alpha}")
    x = np.asarray(values, float)
    m = np.empty_like(x)
    m[0] = x[0]
    for t in range(1, len(x)):
        m[t] = alpha * x[t - 1] + (1 - alpha) * m[t - 1]
    return m


def ewma_scores(values, fit, alpha=0.1):
    """Largest residual from :func:`ewma_forecast`, in sds of the residuals on the ``fit`` windows."""
    x = np.asarray(values, float)
    return residual_scores(x, ewma_forecast(x, alpha), fit)


def seasonal_naive_forecast(values, period, fallback=None):
    """The window one ``period`` earlier; before that, ``fallback`` (a row; the first window if None)."""
    x = np.asarray(values, float)
    if period < 1:
        raise ValueError(f"period must be at least one window, not {period}")
    out = np.empty_like(x)
    out[period:] = x[:-period] if period < len(x) else x[:0]
    out[:period] = x[0] if fallback is None else np.asarray(fallback, float)
    return out


def seasonal_naive_scores(values, fit, period=288):
    """Largest residual from the same time one ``period`` earlier, in sds of the residuals on the ``fit``
    windows. The first period has no history: it is forecast by the mean of the ``fit`` windows."""
    x = np.asarray(values, float)
    fit = np.asarray(fit, bool)
    residuals = x - seasonal_naive_forecast(x, period, fallback=x[fit].mean(axis=0))
    usable = fit & (np.arange(len(x)) >= period)
    return _max_z(residuals, _scale(residuals, usable if usable.any() else fit))


# --- curves --------------------------------------------------------------------------------------

def _ranked(labels, scores):
    y = np.asarray(labels, bool)
    s = np.asarray(scores, float)
    if y.shape != s.shape or y.ndim != 1:
        raise ValueError(f"labels {y.shape} and scores {s.shape} must be two vectors of one length")
    if not np.all(np.isfinite(s)):
        raise ValueError("scores must be finite")
    if y.all() or not y.any():
        raise ValueError("curves need both attack and normal windows")
    order = np.argsort(-s, kind="stable")
    s, y = s[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]  # the last index of each run of tied scores
    return s[last], np.cumsum(y)[last], np.cumsum(~y)[last], int(y.sum()), int((~y).sum())


def roc_curve(labels, scores):
    """``(fpr, tpr, thresholds)``: flagging ``score >= threshold``, from (0, 0) to (1, 1); ties move together."""
    thresholds, tp, fp, pos, neg = _ranked(labels, scores)
    return np.r_[0.0, fp / neg], np.r_[0.0, tp / pos], np.r_[np.inf, thresholds]


def roc_auc(labels, scores):
    """Area under the ROC curve (trapezoids): the chance that an attack window outscores a normal one, ties half."""
    fpr, tpr, _ = roc_curve(labels, scores)
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))


def pr_curve(labels, scores):
    """``(precision, recall, thresholds)`` for flagging ``score >= threshold``, from the highest threshold down."""
    thresholds, tp, fp, pos, _ = _ranked(labels, scores)
    return tp / (tp + fp), tp / pos, thresholds


def average_precision(labels, scores):
    """Area under the PR curve as the mean precision at each recall step: ``sum (R_k - R_{k-1}) P_k``."""
    precision, recall, _ = pr_curve(labels, scores)
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def threshold_at_far(normal_scores, far):
    """The threshold that flags a share ``far`` of ``normal_scores`` (their ``1 - far`` quantile)."""
    s = np.asarray(normal_scores, float)
    if not s.size:
        raise ValueError("no normal windows to choose a threshold on")
    if not 0 < far < 1:
        raise ValueError(f"false-alarm rate must be in (0, 1), not {far}")
    return float(np.quantile(s, 1 - far))


def rates(labels, scores, threshold):
    """``{"recall", "false_alarm_rate", "flagged"}`` when windows with ``score > threshold`` are flagged."""
    y = np.asarray(labels, bool)
    flagged = np.asarray(scores, float) > threshold
    return {"recall": float(flagged[y].mean()) if y.any() else 0.0,
            "false_alarm_rate": float(flagged[~y].mean()) if (~y).any() else 0.0, "flagged": int(flagged.sum())}
