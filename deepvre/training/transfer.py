"""Transfer learning: a pretrained base with a new head, layers frozen or not, and its twin from scratch.

    base = resize_input(feature_extractor(imagenet, "out_relu"), (64, 64, 3))
    model = classifier(base, n_classes=4)
    set_trainable(base, top=20)            # fine-tune the top 20 layers of the base
    scratch = from_scratch(model)          # same network, fresh random weights, all trainable
"""


def feature_extractor(model, layer):
    """The part of ``model`` from its input up to ``layer`` (a name), as a model of its own."""
    import keras

    try:
        output = model.get_layer(layer).output
    except ValueError:
        raise ValueError(f"{model.name} has no layer {layer!r}") from None
    return keras.Model(model.input, output, name=f"{model.name}_to_{layer}")


def resize_input(model, shape):
    """The same convolutional network and weights for another input size, e.g. ``(64, 64, 3)``.

    Works for any functional model whose weights do not depend on the image size (convolutions,
    pooling, normalisation); a ``Flatten`` + ``Dense`` top gives a clear shape error.
    """
    import keras

    shape = tuple(shape)
    if tuple(model.input.shape[1:]) == shape:
        return model
    clone = keras.models.clone_model(model, input_tensors=keras.Input(shape))
    try:
        clone.set_weights(model.get_weights())
    except ValueError as err:
        raise ValueError(f"{model.name}: its weights depend on the input size, cannot resize to {shape}: {err}") from None
    return clone


def set_trainable(model, top):
    """Freeze every layer of ``model`` but the ``top`` last ones that hold weights.

    ``top=0`` freezes all (features only); ``top=-1`` or ``"all"`` unfreezes all. Returns the
    number of layers left trainable. Frozen BatchNormalization layers run in inference mode
    (Keras 3), as fine-tuning needs.
    """
    weighted = [layer for layer in model.layers if layer.weights]
    if top in (-1, "all") or (isinstance(top, int) and top >= len(weighted)):
        top = len(weighted)
    if not isinstance(top, int) or top < 0:
        raise ValueError(f"layers to fine-tune: expected an integer >= 0, -1 or 'all', got {top!r}")
    model.trainable = True
    for layer in model.layers:
        layer.trainable = False
    for layer in weighted[len(weighted) - top:]:
        layer.trainable = True
    return top


def trainable_count(model):
    """Number of trainable scalar weights."""
    import numpy as np

    return int(sum(np.prod(w.shape) for w in model.trainable_weights))


def classifier(base, n_outputs, activation="softmax", dropout=0.2, name="transfer", input_scale=1.0, input_shape=None):
    """``base`` (a feature map model) + global average pooling + dropout + a dense head.

    ``input_scale`` multiplies the input first (e.g. 255 when the data is in 0..1 and the base
    expects pixels 0..255); ``input_shape`` (e.g. ``(32, 32, 3)``) adds a ``Resizing`` layer
    from that shape to the base's input size. Both are plain Keras layers (no Lambda).
    """
    import keras

    size = tuple(base.input.shape[1:])
    inputs = keras.Input(tuple(input_shape or size), name="image")
    x = inputs
    if input_scale != 1.0:
        x = keras.layers.Rescaling(input_scale, name="input_scale")(x)
    if input_shape and tuple(input_shape[:2]) != size[:2]:
        x = keras.layers.Resizing(size[0], size[1], name="input_resize")(x)
    x = base(x)
    if len(x.shape) == 4:
        x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    if dropout:
        x = keras.layers.Dropout(dropout, name="dropout")(x)
    outputs = keras.layers.Dense(n_outputs, activation=activation, name="head")(x)
    return keras.Model(inputs, outputs, name=name)


def from_scratch(model, name=None):
    """The same architecture with freshly initialised weights, every layer trainable."""
    import keras

    clone = keras.models.clone_model(model)
    clone.trainable = True
    for layer in _all_layers(clone):
        layer.trainable = True
    if name:
        clone.name = name
    return clone


def _all_layers(model):
    for layer in model.layers:
        yield layer
        if hasattr(layer, "layers"):
            yield from _all_layers(layer)
