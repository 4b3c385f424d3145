import numpy as np
import pytest

from deepvre.training import plots


def test_confusion_counts_pairs():
    m = plots.confusion([0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 2, 0], 3)
    assert m.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]


def test_confusion_refuses_mismatched_lengths():
    with pytest.raises(ValueError, match="3 labels"):
        plots.confusion([0, 1, 1], [0, 1], 2)


def test_history_dict_merges_resumed_parts():
    merged = plots.history_dict([{"loss": [3, 2]}, {"loss": [1]}])
    assert merged == {"loss": [3.0, 2.0, 1.0]}
    with pytest.raises(TypeError):
        plots.history_dict(42)


def test_figures_are_saved_as_png(tmp_path):
    history = {"loss": [1.0, 0.5], "val_loss": [1.1, 0.7], "accuracy": [0.5, 0.8], "val_accuracy": [0.4, 0.7]}
    fig = plots.training_curves(history, tmp_path / "curves.png")
    assert len(fig.axes) == 2
    assert [line.get_label() for line in fig.axes[0].lines] == ["train", "validation"]
    plots.confusion_matrix([0, 1, 1], [0, 1, 0], ["a", "b"], tmp_path / "cm.png")
    images = np.random.default_rng(0).random((5, 8, 8, 1))
    fig = plots.sample_predictions(images, [0, 1, 0, 1, 0], [0, 1, 1, 1, 0], ["a", "b"], tmp_path / "s.png", columns=3)
    red = [ax for ax in fig.axes if ax.get_title() and ax.title.get_color() == "red"]
    assert len(red) == 1  # exactly the one wrong prediction
    fig = plots.error_scatter([1, 2, 3], [1, 2, 5], tmp_path / "e.png")
    assert "RMSE 1.15" in fig.axes[0].get_title()
    for name in ("curves", "cm", "s", "e"):
        assert (tmp_path / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_curves_need_metrics():
    with pytest.raises(ValueError, match="no metrics"):
        plots.training_curves({})
