"""Schemathesis hooks for the marketplace fuzz test (``SCHEMATHESIS_HOOKS=tests.market.fuzz_hooks``).

``POST api/models`` takes ``application/x-tar``: its schema (a binary string) cannot say what a
publishable tar holds, so uploads are generated here: a valid AI4OS document with a deepvre
section, a minimal ``model.keras`` (a zip with a config, all the publish check reads) and the
training notebook. Names and versions come from small sets, so that publishes also collide (409)
and add versions to models the fuzzer has made, and every model fits in one page of the default
listing (object_level_authorization compares a peer's reads with it).
"""

import ast
import io
import json
import threading
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


# CPython 3.11 keeps the AST converter's recursion depth in state all threads share: two of the
# fuzzer's workers describing a Hypothesis lambda at once (ast.parse of its source) fail with
# "SystemError: AST constructor recursion depth mismatch". One parse at a time.
_parse, _parsing = ast.parse, threading.Lock()


def _one_parse_at_a_time(*args, **kwargs):
    with _parsing:
        return _parse(*args, **kwargs)


ast.parse = _one_parse_at_a_time


@st.composite
def uploads(draw):
    name = draw(st.sampled_from(["fuzz-a", "fuzz-b", "fuzz-c"])) + draw(st.sampled_from(["", "-x", "-y"]))
    version = draw(st.sampled_from(["1.0.0", "1.1.0", "2.0.0-rc1"]))
    visibility = draw(st.sampled_from(["public", "private", "group"]))
    document = make_document(name, version, visibility, ["lab"] if visibility == "group" else None)
    return tar_of({"metadata.json": json.dumps(document).encode(), "model.keras": MODEL, "training.ipynb": b"{}"})


schemathesis.openapi.media_type("application/x-tar", uploads())
