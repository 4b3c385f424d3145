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


def _interrupted_after(tmp_path, epochs_done):
    """A fit of 5 epochs into ``tmp_path`` stopped after ``epochs_done`` epochs; its model, compiled."""
    import keras

    x, y = _data()
    model = tiny_classifier()
    model.compile("adam", "sparse_categorical_crossentropy")
    stop = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: (_ for _ in ()).throw(Interrupt()) if epoch + 1 == epochs_done else None)
    with pytest.raises(Interrupt):
        model.fit(x, y, epochs=5, verbose=0, callbacks=checkpoints.resume_callbacks(tmp_path, "run") + [stop])
    return x, y


def _resume(tmp_path, x, y):
    fresh = tiny_classifier()
    fresh.compile("adam", "sparse_categorical_crossentropy")
    return fresh.fit(x, y, epochs=5, verbose=0, callbacks=checkpoints.resume_callbacks(tmp_path, "run"))


def test_the_last_two_epochs_are_kept_with_their_manifests(tmp_path):
    _interrupted_after(tmp_path, 3)
    backup, _ = checkpoints.checkpoint_paths(tmp_path, "run")
    assert sorted(os.listdir(backup)) == ["epoch-00002.json", "epoch-00002.weights.h5",
                                          "epoch-00003.json", "epoch-00003.weights.h5"]
    assert checkpoints.epochs(backup) == [3, 2] and checkpoints.problem(backup, 3) is None


@pytest.mark.parametrize("damage", ["truncate", "manifest", "no weights"])
def test_a_damaged_newest_checkpoint_falls_back_to_the_one_before(tmp_path, caplog, damage):
    x, y = _interrupted_after(tmp_path, 3)
    backup, _ = checkpoints.checkpoint_paths(tmp_path, "run")
    weights, manifest = checkpoints.weights_file(backup, 3), checkpoints.manifest_file(backup, 3)
    if damage == "truncate":
        os.truncate(weights, os.path.getsize(weights) // 2)
    elif damage == "manifest":
        with open(manifest, "w") as fh:
            fh.write('{"epoch": 3, "fi')
    else:
        os.remove(weights)
    with caplog.at_level("WARNING", logger=checkpoints.__name__):
        history = _resume(tmp_path, x, y)
    assert history.epoch == [2, 3, 4]  # from the checkpoint after epoch 2
    assert "epoch 3 is damaged" in caplog.text and "trying the one before" in caplog.text
    assert not os.path.exists(backup)


def test_no_sound_checkpoint_trains_from_the_start(tmp_path, caplog):
    x, y = _interrupted_after(tmp_path, 1)
    backup, _ = checkpoints.checkpoint_paths(tmp_path, "run")
    os.truncate(checkpoints.weights_file(backup, 1), 10)
    with caplog.at_level("WARNING", logger=checkpoints.__name__):
        assert _resume(tmp_path, x, y).epoch == [0, 1, 2, 3, 4]
    assert "epoch 1 is damaged" in caplog.text


def test_half_written_files_do_not_count_and_are_swept(tmp_path):
    backup, model_file = checkpoints.checkpoint_paths(tmp_path, "run")
    os.makedirs(backup)
    left = [os.path.join(backup, ".epoch-00004.weights.h5.99-ab.partial.weights.h5"),
            os.path.join(tmp_path, ".run.keras.99-ab.partial.keras")]
    for path in left:
        open(path, "wb").close()
    assert not checkpoints.interrupted(tmp_path, "run")
    x, y = _data()
    assert _resume(tmp_path, x, y).epoch == [0, 1, 2, 3, 4]
    assert not any(map(os.path.exists, left)) and os.path.isfile(model_file)


def test_a_checkpoint_of_another_model_is_a_clear_error(tmp_path):
    x, y = _interrupted_after(tmp_path, 2)
    other = tiny_classifier(classes=3)
    other.compile("adam", "sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match="does not fit this model"):
        other.fit(x, y, epochs=5, verbose=0, callbacks=checkpoints.resume_callbacks(tmp_path, "run"))
