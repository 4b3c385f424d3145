"""MODS-style anomaly detection on network traffic: per-window centre features, an LSTM forecast, a threshold.

The ``flow-windows`` pipeline (registered here, run with ``deepvre.pipelines.preprocess``) reuses the
``flows`` pipeline's Dask stages (parsing Zeek ``conn.log``, features per window per source host)
and aggregates them into one row per time window for the whole data centre (:data:`FEATURES`):
totals (connections, bytes, unanswered and rejected connections), the number of active sources,
and per-source maxima (destination ports, bytes sent, connections) that single out one busy host.
It writes ``x`` = ``seq_len`` windows of log1p features, ``y`` = the next window, ``t`` = that
window's start (Unix seconds), split by time.

An anomaly is a window whose forecast error (mean squared error of standardised features) exceeds
a threshold learned on normal traffic: a quantile of the errors on normal validation windows.
:func:`detection_report` scores flagged windows against the generator's labelled attacks.

Splits are by whole UTC day (:func:`split_days`): every window whose forecast target falls on one
day goes to one split, so no day is in two (``evaluation.check_no_leakage`` asserts it), and
:func:`attack_mask` marks the windows an attack touches (the labels, and the windows kept out of
training).
"""

import numpy as np

from ..pipelines import flows
from ..pipelines.params import resolve
from ..pipelines.registry import register_pipeline
from ..pipelines.run import Plan, Shard
from ..pipelines.splits import SPLITS

FEATURES = ("conns", "orig_bytes", "resp_bytes", "state_S0", "state_REJ", "sources",
            "max_dst_ports", "max_orig_bytes", "max_conns")
DEFAULTS = {
    "window": 300,        # seconds per time window
    "seq_len": 12,        # windows per input sequence
    "split": (0.7, 0.3, 0.0),
    "blocksize": "16MB",
}


def centre_features(per_host):
    """One row per window from the ``flows`` features per (window, source host)."""
    g = per_host.groupby(level="window")
    out = g[["conns", "orig_bytes", "resp_bytes", "state_S0", "state_REJ"]].sum()
    out["sources"] = g.size()
    out["max_dst_ports"] = g["dst_ports"].max()
    out["max_orig_bytes"] = g["orig_bytes"].max()
    out["max_conns"] = g["conns"].max()
    return out[list(FEATURES)]


def dense_series(table, window):
    """``(windows, values)``: every window from the first to the last (quiet ones as zeros), log1p values."""
    if not len(table):
        return np.zeros(0, np.int64), np.zeros((0, len(FEATURES)))
    windows = np.arange(int(table.index.min()), int(table.index.max()) + window, window, dtype=np.int64)
    values = table.reindex(windows, fill_value=0).to_numpy(np.float64)
    return windows, np.log1p(np.maximum(values, 0))


def window_sequences(values, windows, seq_len):
    """Sequences of ``seq_len`` windows -> the next one; ``t`` is the start of the predicted window."""
    values = np.asarray(values, np.float32).reshape(-1, len(FEATURES))
    n = len(values) - seq_len
    if n <= 0:
        return {"x": np.zeros((0, seq_len, len(FEATURES)), np.float32),
                "y": np.zeros((0, len(FEATURES)), np.float32), "t": np.zeros(0, np.int64)}, {"sequences": 0}, []
    x = np.stack([values[i:i + seq_len] for i in range(n)])
    return {"x": x, "y": values[seq_len:], "t": np.asarray(windows[seq_len:], np.int64)}, {"sequences": n}, []


@register_pipeline("flow-windows")
def plan(input, output, params):
    """Flow windows: Zeek conn.log -> centre-level features per window -> forecasting sequences."""
    p = resolve("flow-windows", params, DEFAULTS)
    files = flows.log_files(input)
    conns = flows.read_connections(files, p["blocksize"])
    # one pass over the logs: features per (window, host) and the bad lines together
    per_host, bad, n_bad = flows.features_and_bad(conns, p["window"], "host")
    windows, values = dense_series(centre_features(per_host), p["window"])
    by_time = flows.time_splits(list(windows), p["split"])
    shards, start = [], 0
    for split in SPLITS:
        span = by_time[split]
        if len(span) > p["seq_len"]:
            shards.append(Shard(split, 0, window_sequences, {
                "values": values[start:start + len(span)].round(6).tolist(), "windows": [int(w) for w in span],
                "seq_len": p["seq_len"]}))
        start += len(span)
    summary = {"files": [f.rsplit("/", 1)[-1] for f in files], "windows": len(windows), "features": list(FEATURES)}
    return Plan("flow-windows", input, p, shards, summary, chunk=512, bad=flows.bad_records(bad, n_bad))


def standardiser(y):
    """``(mean, std)`` per feature of normal training targets (std at least 1e-3)."""
    y = np.asarray(y, np.float64)
    return y.mean(axis=0), np.maximum(y.std(axis=0), 1e-3)


def forecast_errors(y_true, y_pred):
    """Per-window mean squared error over the (standardised) features."""
    return np.mean((np.asarray(y_true, float) - np.asarray(y_pred, float)) ** 2, axis=1)


def learn_threshold(normal_errors, quantile=0.99):
    """The anomaly threshold: the ``quantile`` of forecast errors on normal traffic."""
    errors = np.asarray(normal_errors, float)
    if not errors.size:
        raise ValueError("no normal windows to learn a threshold from")
    if not 0 < quantile < 1:
        raise ValueError(f"threshold quantile must be in (0, 1), got {quantile}")
    return float(np.quantile(errors, quantile))


def lstm_forecaster(seq_len, n_features, units=32, name="mods_lstm"):
    """``seq_len`` windows of features -> the next window's features."""
    import keras

    inputs = keras.Input((seq_len, n_features), name="windows")
    x = keras.layers.LSTM(units, name="lstm")(inputs)
    x = keras.layers.Dense(units, activation="relu", name="hidden")(x)
    outputs = keras.layers.Dense(n_features, name="next_window")(x)
    return keras.Model(inputs, outputs, name=name)


def attack_mask(t, window, attacks, lookback=0):
    """Windows ``[t - lookback, t + window)`` that overlap an attack's ``[start_ts, end_ts)``.

    ``lookback=0``: the attack windows (the labels); ``lookback = seq_len * window``: the sequences
    whose inputs or target an attack touches.
    """
    t = np.asarray(t, float)
    mask = np.zeros(t.shape, bool)
    for a in attacks:
        mask |= (t - lookback < a["end_ts"]) & (t + window > a["start_ts"])
    return mask


def days_of(t):
    """The UTC day (``YYYY-MM-DD``) of each window start ``t`` (Unix seconds): the split's groups."""
    import datetime as dt

    first = int(np.floor(np.min(t) / 86400)) if len(t) else 0
    index = (np.asarray(t, float) // 86400).astype(int)
    names = {d: dt.date.fromordinal(dt.date(1970, 1, 1).toordinal() + d).isoformat()
             for d in range(first, int(index.max()) + 1)} if len(t) else {}
    return [names[d] for d in index]


SPLIT_DAYS = (0.3, 0.3, 0.4)  # shares of the days for train, val and test


def split_days(t, seed, fractions=SPLIT_DAYS):
    """The split (``train``, ``val`` or ``test``) of each window, by whole UTC day.

    Days are drawn with ``seed`` by ``evaluation.grouped_split``, weekdays and weekend days apart
    (strata), so each split gets both kinds where there are three or more of a kind. Raises
    ``evaluation.Leakage`` if a day lands in two splits.
    """
    import datetime as dt

    from . import evaluation

    days = days_of(t)
    weekend = ["weekend" if dt.date.fromisoformat(d).weekday() >= 5 else "weekday" for d in days]
    names = evaluation.grouped_split(days, tuple(fractions), seed=seed, strata=weekend)
    evaluation.check_no_leakage(names, days)
    return names


def detection_report(t, flagged, window, attacks):
    """Precision, recall and detection delay per attack type.

    ``t``: start of each scored window; ``flagged``: its anomaly flag; ``attacks``: the generator's
    labels (``type``, ``start_ts``, ``end_ts``). A window is an attack window when it overlaps the
    attack's span. Per type: ``recall`` = flagged attack windows / attack windows; ``precision`` =
    flagged windows of this attack / (those + false alarms, i.e. flagged windows overlapping no
    attack); ``delay_s`` = end of the first flagged window minus the attack's start (the forecast
    can be checked once the window closes), ``-1`` when never detected (``detected`` 0). ``overall``
    holds the same over all attacks plus the false-alarm count.
    """
    t, flagged = np.asarray(t, float), np.asarray(flagged, bool)
    if t.shape != flagged.shape:
        raise ValueError(f"{t.size} windows but {flagged.size} flags")
    in_attack = attack_mask(t, window, attacks)
    spans = {}
    for a in attacks:
        spans.setdefault(a["type"], []).append((a, attack_mask(t, window, [a])))
    false_alarms = int((flagged & ~in_attack).sum())
    report = {}
    for kind, items in spans.items():
        mask = np.any([m for _, m in items], axis=0)
        hits = int((flagged & mask).sum())
        delays = []
        for a, m in items:
            first = np.flatnonzero(flagged & m)
            if first.size:
                delays.append(float(t[first[0]] + window - a["start_ts"]))
        report[kind] = {
            "windows": int(mask.sum()), "recall": hits / max(int(mask.sum()), 1),
            "precision": hits / (hits + false_alarms) if hits + false_alarms else 0.0,
            "detected": int(len(delays) == len(items)), "delay_s": max(delays) if len(delays) == len(items) else -1.0,
        }
    hits = int((flagged & in_attack).sum())
    report["overall"] = {"windows": int(in_attack.sum()), "recall": hits / max(int(in_attack.sum()), 1),
                         "precision": hits / (hits + false_alarms) if hits + false_alarms else 0.0,
                         "false_alarms": false_alarms, "flagged": int(flagged.sum())}
    return report
