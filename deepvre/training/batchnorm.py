"""BatchNormalization for short training: a momentum that follows the weights, and running
statistics re-estimated at the final weights.

MobileNetV2's BatchNormalization keeps running statistics with momentum 0.999, so in a few dozen
optimizer steps they barely leave their initial values: a network trained from scratch learns
(batch statistics) yet scores chance at test time (running statistics). A lower momentum alone
does not fix it (the weights move up to the last step); :func:`reestimate` recomputes the running
statistics of every trainable BatchNormalization layer at the final weights, in one pass over the
training data, without changing a weight. Frozen layers (a fine-tuned base's lower part) keep theirs.

    set_momentum(model, 0.9)          # before training
    model.fit(...)
    reestimate(model, x_train)        # after training, before evaluating
"""


def trainable_layers(model):
    """Every trainable ``BatchNormalization`` layer of ``model``, nested models included."""
    import keras

    found = []
    for layer in model.layers:
        if hasattr(layer, "layers"):
            found += trainable_layers(layer)
        elif isinstance(layer, keras.layers.BatchNormalization) and layer.trainable:
            found.append(layer)
    return found


def set_momentum(model, momentum):
    """Momentum of every trainable BatchNormalization layer; returns how many."""
    layers = trainable_layers(model)
    for layer in layers:
        layer.momentum = momentum
    return len(layers)


def reestimate(model, x, chunk=128):
    """Running statistics of every trainable BatchNormalization layer re-estimated at the current
    weights: one pass over ``x`` in training mode, the chunks' statistics averaged (chunk ``k`` is
    weighted ``1/(k+1)``); no weight changes. Dropout in the pass is harmless when it comes after
    every normalisation (a classifier head). Returns the number of layers."""
    layers = trainable_layers(model)
    saved = [layer.momentum for layer in layers]
    try:
        for k, start in enumerate(range(0, len(x), chunk)):
            for layer in layers:
                layer.momentum = k / (k + 1)  # k = 0 replaces, then a running average over the chunks
            model(x[start:start + chunk], training=True)
    finally:
        for layer, momentum in zip(layers, saved):
            layer.momentum = momentum
    return len(layers)
