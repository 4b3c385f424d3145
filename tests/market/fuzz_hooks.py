"""Schemathesis hooks for the marketplace fuzz test (``SCHEMATHESIS_HOOKS=tests.market.fuzz_hooks``).

``POST api/models`` takes ``application/x-tar``: its schema (a binary string) cannot say what a
publishable tar holds, so uploads are generated here: a valid AI4OS document with a deepvre
section, a minimal ``model.keras`` (a zip with a config, all the publish check reads) and the
training notebook. Names and versions come from small sets, so that publishes also collide (409)
and add versions to models the fuzzer has made, and every model fits in one page of the default
listing (object_level_authorization compares a peer's reads with it).
"""

import io
import json
import zipfile

import schemathesis
from hypothesis import strategies as st

from tests.market.conftest import make_document, tar_of  # noqa: F401  (tar_of: for the tests too)


def _keras_file():
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        archive.writestr("config.json", json.dumps({"class_name": "Sequential", "config": {"layers": []}}))
        archive.writestr("metadata.json", json.dumps({"keras_version": "3.0.0"}))
        archive.writestr("model.weights.h5", b"")
    return buf.getvalue()


MODEL = _keras_file()


@st.composite
def uploads(draw):
    name = draw(st.sampled_from(["fuzz-a", "fuzz-b", "fuzz-c"])) + draw(st.sampled_from(["", "-x", "-y"]))
    version = draw(st.sampled_from(["1.0.0", "1.1.0", "2.0.0-rc1"]))
    visibility = draw(st.sampled_from(["public", "private", "group"]))
    document = make_document(name, version, visibility, ["lab"] if visibility == "group" else None)
    return tar_of({"metadata.json": json.dumps(document).encode(), "model.keras": MODEL, "training.ipynb": b"{}"})


schemathesis.openapi.media_type("application/x-tar", uploads())
