import numpy as np
import pytest

from deepvre.training import transfer

from .conftest import tiny_classifier


def test_set_trainable_top_layers():
    model = tiny_classifier()
    assert transfer.set_trainable(model, 1) == 1
    assert [layer.name for layer in model.layers if layer.trainable and layer.weights] == ["dense"]
    assert transfer.set_trainable(model, 0) == 0 and transfer.trainable_count(model) == 0
    assert transfer.set_trainable(model, "all") == 4
    with pytest.raises(ValueError, match="integer"):
        transfer.set_trainable(model, -3)


def test_resize_input_keeps_the_weights():
    import keras

    model = tiny_classifier()
    features = transfer.feature_extractor(model, "conv_b")
    big = transfer.resize_input(features, (24, 24, 3))
    assert tuple(big.output.shape[1:]) == (20, 20, 4)
    x = np.random.default_rng(0).random((2, 16, 16, 3)).astype("float32")
    np.testing.assert_allclose(transfer.resize_input(big, (16, 16, 3)).predict(x, verbose=0),
                               features.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    inputs = keras.Input((8, 8, 1))
    flat = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Flatten()(inputs)))
    with pytest.raises(ValueError, match="depend on the input size"):
        transfer.resize_input(flat, (10, 10, 1))
    with pytest.raises(ValueError, match="no layer"):
        transfer.feature_extractor(model, "nope")


def test_classifier_and_its_twin_from_scratch():
    base = transfer.feature_extractor(tiny_classifier(), "conv_b")
    model = transfer.classifier(base, 3)
    transfer.set_trainable(base, 0)
    assert transfer.trainable_count(model) == 4 * 3 + 3  # the head only
    scratch = transfer.from_scratch(model, name="scratch")
    assert [w.shape for w in scratch.weights] == [w.shape for w in model.weights]
    assert transfer.trainable_count(scratch) > transfer.trainable_count(model)
    kernel = lambda m: next(w for w in m.weights if "kernel" in w.path).numpy()
    assert not np.allclose(kernel(scratch), kernel(model))  # fresh weights, not copied
