import os

import numpy as np
import pytest

from deepvre.training import checkpoints

from .conftest import tiny_classifier


class Interrupt(Exception):
    pass


def _data():
    rng = np.random.default_rng(1)
    x = rng.random((32, 16, 16, 3)).astype("float32")
    return x, (x.mean(axis=(1, 2, 3)) > 0.5).astype("int64")


def test_interrupted_fit_resumes_from_the_last_epoch(tmp_path):
    import keras

    x, y = _data()
    model = tiny_classifier()
    model.compile("adam", "sparse_categorical_crossentropy")
    stop = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: (_ for _ in ()).throw(Interrupt()) if epoch == 2 else None)
    callbacks = checkpoints.resume_callbacks(tmp_path, "run")
    with pytest.raises(Interrupt):
        model.fit(x, y, epochs=5, verbose=0, callbacks=callbacks + [stop])
    assert checkpoints.interrupted(tmp_path, "run")
    # a fresh process would rebuild the model: so do we
    fresh = tiny_classifier()
    fresh.compile("adam", "sparse_categorical_crossentropy")
    history = fresh.fit(x, y, epochs=5, verbose=0, callbacks=checkpoints.resume_callbacks(tmp_path, "run"))
    assert history.epoch == [3, 4]  # epochs 0..2 were done before the interruption
    assert not checkpoints.interrupted(tmp_path, "run")
    saved = keras.saving.load_model(os.path.join(tmp_path, "run.keras"), safe_mode=True)
    np.testing.assert_allclose(saved.predict(x, verbose=0), fresh.predict(x, verbose=0), rtol=1e-5, atol=1e-6)


def test_checkpoint_names_cannot_leave_the_folder(tmp_path):
    with pytest.raises(ValueError, match="no folders"):
        checkpoints.checkpoint_paths(tmp_path, "../elsewhere")
