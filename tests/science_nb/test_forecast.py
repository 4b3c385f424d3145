"""MODS pieces: centre features, sequences, threshold, detection report, the flow-windows pipeline."""

import json

import numpy as np
import pandas as pd
import pytest

from deepvre.science import forecast


def test_centre_features_aggregate_hosts_per_window():
    idx = pd.MultiIndex.from_tuples([(0, "a"), (0, "b"), (60, "a")], names=["window", "key"])
    per_host = pd.DataFrame({"conns": [3, 5, 1], "orig_bytes": [10, 200, 7], "resp_bytes": [1, 2, 3],
                             "state_S0": [0, 4, 0], "state_REJ": [1, 0, 0], "dst_ports": [2, 9, 1]}, index=idx)
    out = forecast.centre_features(per_host)
    assert list(out.columns) == list(forecast.FEATURES)
    assert out.loc[0].to_dict() == {"conns": 8, "orig_bytes": 210, "resp_bytes": 3, "state_S0": 4, "state_REJ": 1,
                                    "sources": 2, "max_dst_ports": 9, "max_orig_bytes": 200, "max_conns": 5}
    windows, values = forecast.dense_series(out.drop(index=60).reindex([0, 120]).fillna(1), 60)
    assert list(windows) == [0, 60, 120] and np.all(values[1] == 0)  # a quiet window is zeros


def test_window_sequences_time_stamps_the_predicted_window():
    values = np.arange(5 * 9, dtype=float).reshape(5, 9)
    arrays, counts, bad = forecast.window_sequences(values.tolist(), [0, 60, 120, 180, 240], 3)
    assert arrays["x"].shape == (2, 3, 9) and counts == {"sequences": 2} and bad == []
    assert list(arrays["t"]) == [180, 240] and np.array_equal(arrays["y"][0], values[3])
    assert forecast.window_sequences(values[:3].tolist(), [0, 60, 120], 3)[1] == {"sequences": 0}


def test_threshold_and_errors():
    assert forecast.forecast_errors([[0, 0], [1, 1]], [[0, 2], [1, 1]]).tolist() == [2.0, 0.0]
    assert forecast.learn_threshold(np.arange(101), 0.9) == pytest.approx(90)
    with pytest.raises(ValueError):
        forecast.learn_threshold([], 0.9)
    with pytest.raises(ValueError):
        forecast.learn_threshold([1.0], 1.5)


def test_detection_report_precision_recall_delay():
    t = np.arange(0, 1000, 100)
    attacks = [{"type": "ddos", "start_ts": 250, "end_ts": 450}, {"type": "port_scan", "start_ts": 700, "end_ts": 750}]
    flagged = np.zeros(10, bool)
    flagged[[3, 4, 9]] = True  # ddos windows 200..400 -> flagged 300, 400; 900 is a false alarm
    r = forecast.detection_report(t, flagged, 100, attacks)
    assert r["ddos"]["windows"] == 3 and r["ddos"]["recall"] == pytest.approx(2 / 3)
    assert r["ddos"]["precision"] == pytest.approx(2 / 3) and r["ddos"]["delay_s"] == 150
    assert r["port_scan"] == {"windows": 1, "recall": 0.0, "precision": 0.0, "detected": 0, "delay_s": -1.0}
    assert r["overall"]["false_alarms"] == 1 and r["overall"]["flagged"] == 3


def test_flow_windows_pipeline_on_generated_logs(tmp_path):
    from deepvre.pipelines import preprocess
    from deepvre.pipelines.dataset import open_split
    from deepvre.science import traffic

    _, meta = traffic.generate_logs(tmp_path / "logs", "A", 2, 5)
    out = tmp_path / "prepared"
    preprocess("flow-windows", str(tmp_path / "logs"), str(out), {"split": [0.0, 0.0, 1.0]}, n_workers=1,
               progress=False)
    x, y, t = open_split(str(out), "test", ("x", "y", "t"))
    assert x.shape[1:] == (12, len(forecast.FEATURES)) and len(x) == len(y) == len(t) == 2 * 288 - 12
    assert np.all(np.diff(t) == 300)
    # the port scan's window stands out in max destination ports of one source
    scan = next(a for a in meta["attacks"] if a["type"] == "port_scan")
    inside = (t < scan["end_ts"]) & (t + 300 > scan["start_ts"])
    col = forecast.FEATURES.index("max_dst_ports")
    assert y[inside, col].max() > np.log1p(100) > y[~inside, col].max()
    assert json.loads((out / "manifest.json").read_text())["kind"] == "flow-windows"
