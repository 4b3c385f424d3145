"""Sweep specs expand to the cartesian product; the metrics table lists every run."""

import pytest

from deepvre.runs.sweep import expand, metrics_table, parse_sweep


def test_cartesian_product_in_order():
    axes = parse_sweep(["lr=0.1,0.01", "epochs=1,2,3"])
    combos = expand(axes)
    assert len(combos) == 6
    assert combos[0] == {"lr": "0.1", "epochs": "1"}
    assert combos[-1] == {"lr": "0.01", "epochs": "3"}
    assert len({tuple(c.items()) for c in combos}) == 6


@pytest.mark.parametrize("spec", ["lr", "=1,2", "lr=", "lr=1,,2", "1x=1", "a b=1"])
def test_bad_spec_is_named(spec):
    with pytest.raises(ValueError, match="--sweep"):
        parse_sweep([spec])


def test_same_key_twice_is_an_error():
    with pytest.raises(ValueError, match="swept twice"):
        parse_sweep(["a=1", "a=2"])


def test_table_has_swept_values_and_scalar_metrics():
    rows = [
        {"id": "r1", "state": "done", "parameters": {"lr": 0.1}, "metrics": {"acc": 0.91234, "curve": [1]}},
        {"id": "r2", "state": "failed", "parameters": {"lr": 0.01}, "metrics": None},
    ]
    lines = metrics_table(rows, ["lr"]).splitlines()
    assert lines[0].split() == ["run", "state", "lr", "acc"]
    assert lines[2].split() == ["r1", "done", "0.1", "0.9123"]
    assert lines[3].split() == ["r2", "failed", "0.01"]
