"""Keras model files: a static check at publish time and the only loader deepvre uses.

A ``.keras`` file is a zip of ``config.json``, ``metadata.json`` and ``model.weights.h5``.
:func:`problems` reads the config without TensorFlow and refuses ``Lambda`` layers (they carry
Python bytecode); :func:`load` always uses ``safe_mode=True``, which refuses them again at load.
No pickle is ever loaded.
"""

import json
import zipfile

ALLOWED_MEMBERS = ("config.json", "metadata.json", "model.weights.h5")
# The largest config.json read (a zip member can expand a thousandfold: checked before reading)
CONFIG_LIMIT = 16 * 1024 * 1024


def _layers(config):
    """Every nested layer config in a Keras model config."""
    if isinstance(config, dict):
        if "class_name" in config:
            yield config
        for value in config.values():
            yield from _layers(value)
    elif isinstance(config, list):
        for value in config:
            yield from _layers(value)


def problems(path, name="model.keras"):
    """What is wrong with the ``.keras`` file at ``path`` (empty list: acceptable)."""
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.namelist()
            info = archive.getinfo("config.json")
            if info.file_size > CONFIG_LIMIT:
                return [f"files.{name}: config.json is {info.file_size} bytes, over the limit of {CONFIG_LIMIT}"]
            with archive.open(info) as member:
                raw = member.read(CONFIG_LIMIT + 1)  # the zip reader stops at file_size; this is a second guard
            if len(raw) > CONFIG_LIMIT:
                return [f"files.{name}: config.json is over the limit of {CONFIG_LIMIT} bytes"]
            config = json.loads(raw)
            layers = list(_layers(config))
    except (zipfile.BadZipFile, KeyError, ValueError, RecursionError) as err:
        return [f"files.{name}: not a Keras 3 .keras file ({type(err).__name__}: {str(err)[:200]})"]
    found = []
    extra = [m for m in members if m not in ALLOWED_MEMBERS and not m.startswith("assets/")]
    if extra:
        found.append(f"files.{name}: unexpected members {extra[:20]}")
    lambdas = sorted({str((c.get("config") if isinstance(c.get("config"), dict) else {}).get("name", "?"))
                      for c in layers if c.get("class_name") == "Lambda"})
    if lambdas:
        found.append(f"files.{name}: Lambda layers carry code and are refused: {', '.join(lambdas)}")
    return found


def load(path):
    """Load a ``.keras`` file with ``safe_mode=True`` (a Lambda layer raises instead of running)."""
    import keras

    return keras.saving.load_model(path, safe_mode=True, compile=False)
